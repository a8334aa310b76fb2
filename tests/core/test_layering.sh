#!/usr/bin/env bash
# test_layering.sh — dependencies point one way, and the build refuses the other way (issue 13):
# every distinct compile command of a module's files (compile_commands.json of this build) is
# asked to preprocess a tiny file that includes one header of each module. A module it may use
# (README "Source tree": the table below, kept here independently of CMakeLists.txt) must
# resolve; any other must fail with "No such file" for that very header. So the test fails when
# someone puts src/ back on a module's include path, or lets a module use one it may not.
# Inside a module the files call one way too: no cycle among its objects' symbols (nm: who
# defines what another uses) — music's genre/rules/prompt and jobs' queue/run_* once called each
# other. Also: no source reaches past its include path with a relative "../" include.
# src/sd runs on the compute backend interface only (tensor/backend.h, issue 12): no file of it
# includes, even through another header, tensor/ops.h or tensor/cpu/*, and no object of it
# calls an op_* / ops_* function of the CPU implementation.
set -u
: "${M2P_BUILD_DIR:?M2P_BUILD_DIR is set by ctest}" "${M2P_SOURCE_DIR:?}"
db="$M2P_BUILD_DIR/compile_commands.json"
[ -s "$db" ] || { echo "FAIL: no $db (CMAKE_EXPORT_COMPILE_COMMANDS)"; exit 1; }
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

# module=the modules it may include (itself too)
uses='core=core
tensor=tensor core
audio=audio core
store=store core
poster=poster core
model=model tensor core
sd=sd model tensor core
music=music audio core
jobs=jobs sd model music audio store poster core
server=server jobs core
cli=cli server jobs core'
# one header of each module that has headers (poster has none)
headers='core=core/error.h
tensor=tensor/ops.h
audio=audio/audio.h
store=store/store.h
model=model/weights.h
sd=sd/pipeline.h
music=music/genre.h
jobs=jobs/queue.h
server=server/server.h
cli=cli/commands.h'

python3 - "$db" "$M2P_SOURCE_DIR/src" "$work" "$uses" "$headers" <<'PY'
import json, os, shlex, subprocess, sys
db, src, work = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
uses = {k: v.split() for k, v in (l.split("=", 1) for l in sys.argv[4].splitlines())}
header = dict(l.split("=", 1) for l in sys.argv[5].splitlines())
fails, probes, seen, covered = 0, 0, set(), set()
objects = {}  # module -> its object files
# Known cycles, not yet taken apart: the store front (store.c) and its backends call each other.
known_cycles = {"store": {"store", "store_sqlite", "store_pg", "jobs_store", "jobs_pg"}}
# Modules that reach a lower module only through its interface: headers they must not include
# (directly or through other headers) and symbol prefixes they must not call.
interface_only = {"sd": (("tensor/ops.h", "tensor/cpu/"), ("op_", "ops_"))}
n_interface = 0

def fail(msg):
    global fails
    print("FAIL: " + msg)
    fails += 1

for e in json.load(open(db)):
    f = e["file"]
    if not f.startswith(src):
        continue
    module = f[len(src):].split("/")[0]
    if module not in uses:
        fail(f"src/{module} is not in the direction table")
        continue
    argv = e.get("arguments") or shlex.split(e["command"])
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a in ("-o", "-c"):
            skip = True
            if a == "-o" and i + 1 < len(argv):
                objects.setdefault(module, []).append(os.path.join(e["directory"], argv[i + 1]))
        elif a != f:
            out.append(a)
    if module in interface_only:
        # every header this file pulls in, from the preprocessor's line markers
        r = subprocess.run(out + ["-E", f, "-o", "-"], cwd=e["directory"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            fail(f"{f}: does not preprocess:\n" + "\n".join(r.stderr.splitlines()[:3]))
        # (through build/modinc's links: the real path says which module's header it is)
        inc = {os.path.realpath(os.path.join(e["directory"], l.split('"')[1]))
               for l in r.stdout.splitlines() if l.startswith("# ") and '"' in l}
        n_interface += 1
        for h in sorted(inc):
            if h.startswith(src) and any(h[len(src):].startswith(b)
                                         for b in interface_only[module][0]):
                fail(f"{f[len(src):]} includes {h[len(src):]}: src/{module} must use "
                     f"the interface (tensor/backend.h), not the CPU ops")
    if (module, tuple(out)) in seen:
        continue
    seen.add((module, tuple(out)))
    covered.add(module)
    for target, h in sorted(header.items()):
        probe = f"{work}/probe.c"
        with open(probe, "w") as p:
            p.write(f'#include "{h}"\n')
        r = subprocess.run(out + ["-E", probe, "-o", "/dev/null"], cwd=e["directory"],
                           stderr=subprocess.PIPE, text=True)
        probes += 1
        err = "\n".join(r.stderr.splitlines()[:3])
        if target in uses[module]:
            if r.returncode:
                fail(f'src/{module} may use {target}, but #include "{h}" does not compile:\n{err}')
        elif r.returncode == 0:
            fail(f'src/{module} must not use {target}, but #include "{h}" compiles ({f})')
        elif f"{h}: No such file" not in r.stderr:
            fail(f'src/{module} including "{h}" failed for another reason:\n{err}')
for m in sorted(set(uses) - covered):
    fail(f"no compile command for src/{m} in {db}")

def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)
    for v in graph:
        if v not in index:
            visit(v)
    return found

n_objects = 0
for m, objs in sorted(objects.items()):
    defined, used = {}, {}
    for o in objs:
        if not os.path.exists(o):
            fail(f"{o} is not built (build before testing)")
            continue
        n_objects += 1
        name = os.path.basename(o).split(".")[0]
        r = subprocess.run(["nm", o], stdout=subprocess.PIPE, text=True)
        defined[name], used[name] = set(), set()
        for line in r.stdout.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBRCV":
                defined[name].add(p[2])
            elif len(p) == 2 and p[0] == "U":
                used[name].add(p[1])
    for name, syms in sorted(used.items()):
        for sym in sorted(syms):
            if m in interface_only and sym.startswith(interface_only[m][1]):
                fail(f"src/{m}/{name}.c calls {sym}: src/{m} must call the compute backend "
                     f"(tensor/backend.h), not the CPU ops")
    owner = {sym: name for name, syms in defined.items() for sym in syms}
    graph = {name: {owner[s] for s in syms if owner.get(s, name) != name}
             for name, syms in used.items()}
    for comp in cycles(graph):
        if comp != known_cycles.get(m):
            fail(f"src/{m}: {', '.join(sorted(comp))} call each other (a cycle)")
if not fails:
    print(f"layering: {probes} includes probed from {len(seen)} compile commands; each module "
          f"reaches only the modules it may use; no calls in a circle among {n_objects} objects; "
          f"{n_interface} files of {', '.join(interface_only)} use only the backend interface")
sys.exit(1 if fails else 0)
PY
fails=$?
rel=$(grep -rnE '#include "\.\./' "$M2P_SOURCE_DIR/src" --include='*.c' --include='*.h')
[ -z "$rel" ] || { echo "FAIL: relative includes past the include path:"; echo "$rel"; fails=$((fails + 1)); }
exit "$fails"
