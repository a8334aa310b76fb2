# golden_runs.sh — sourced by tests/cli scripts (not a test itself): reproduce a whole diffusers
# run of a family fixture through `mus2pic generate` and compare with its goldens.
#   prep FIXTURE RUN      -> $T/RUN/{lat,noise}.safetensors, sched.json, prompt, negative;
#                            prints "K GUIDANCE STEPS W H" (K = recorded noise draws)
#   compare FIXTURE RUN   -> $T/RUN/raw.safetensors against image_np (fixture tolerance) and
#                            $T/RUN/out.png against image_uint8
#   run_model MODEL FIXTURE RUN [generate args...]   both, with --model MODEL; counts in $fail
# Needs BIN, FX, T and fail set by the caller.
# fixture run -> $T/<run>/{lat,noise,sched}.* and args; prints "K GUIDANCE STEPS W H"
prep() { # fixture, run
    python3 - "$FX/$1/golden" "$2" "$T/$2" <<'PY'
import json, os, struct, sys
gold, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
man = json.load(open(gold + '/manifest.json'))['files'][run + '.safetensors']
raw = open(gold + '/' + run + '.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); base = 8 + n
def get(name):
    a, b = hdr[name]['data_offsets']; return raw[base + a:base + b]
def write(path, name, shape, data):
    h = json.dumps({name: {'dtype': 'F32', 'shape': shape, 'data_offsets': [0, len(data)]}}).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
shape = hdr['latents_in']['shape']
write(out + '/lat.safetensors', 'latents', shape, get('latents_in'))
k = man['num_noise_draws']
if k:
    write(out + '/noise.safetensors', 'noise', [k] + shape,
          b''.join(get('noise%d' % i) for i in range(k)))
cfg = dict(man['scheduler_config']); cfg['_class_name'] = man['scheduler_class']
json.dump(cfg, open(out + '/sched.json', 'w'))
c = man['call']
open(out + '/prompt', 'w').write(c['prompt'])
open(out + '/negative', 'w').write(c.get('negative_prompt') or '')
print(k, c['guidance_scale'], c['num_inference_steps'], c['width'], c['height'])
PY
}

# compare $T/<run>/raw.safetensors and out.png with the golden run
compare() { # fixture, run
    python3 - "$FX/$1/golden" "$2" "$T/$2" <<'PY'
import json, struct, sys, zlib
gold, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
tol = json.load(open(gold + '/manifest.json'))['suggested_tolerances'][run + '.safetensors:image_np']
def load(p):
    raw = open(p, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw, 8 + n
gh, graw, gb = load(gold + '/' + run + '.safetensors')
rh, rraw, rb = load(out + '/raw.safetensors')
_, H, W, _ = gh['image_np']['shape']
assert rh['image']['shape'] == [1, 3, H, W], rh
a, b = gh['image_np']['data_offsets']; want = struct.unpack('<%df' % (H * W * 3), graw[gb + a:gb + b])
a, b = rh['image']['data_offsets']; got = struct.unpack('<%df' % (H * W * 3), rraw[rb + a:rb + b])
worst = max(abs(got[c * H * W + p] - want[p * 3 + c]) for p in range(H * W) for c in range(3))
# the PNG (8-bit RGB, any filter) against image_uint8
png = open(out + '/out.png', 'rb').read()
pos, idat = 8, b''
while pos < len(png):
    ln, typ = struct.unpack('>I4s', png[pos:pos + 8])
    if typ == b'IDAT': idat += png[pos + 8:pos + 8 + ln]
    pos += 12 + ln
data, stride, prev, pix = zlib.decompress(idat), W * 3, bytearray(W * 3), []
for y in range(H):
    f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        l = line[i - 3] if i >= 3 else 0; u = prev[i]; ul = prev[i - 3] if i >= 3 else 0
        if f == 1: line[i] = (line[i] + l) & 255
        elif f == 2: line[i] = (line[i] + u) & 255
        elif f == 3: line[i] = (line[i] + (l + u) // 2) & 255
        elif f == 4:
            p = l + u - ul; pa, pb, pc = abs(p - l), abs(p - u), abs(p - ul)
            line[i] = (line[i] + (l if pa <= pb and pa <= pc else u if pb <= pc else ul)) & 255
    pix += line; prev = line
a, b = gh['image_uint8']['data_offsets']; u8 = graw[gb + a:gb + b]
diff = [abs(x - y) for x, y in zip(pix, u8)]
bad = sum(1 for d in diff if d)
print('%s: image_np max err %.3g (tol %g), PNG: %d values differ, max %d' % (run, worst, tol, bad, max(diff)))
if not (worst <= tol and max(diff) <= 1 and bad <= len(diff) // 100):
    print('FAIL: %s differs from diffusers' % run, file=sys.stderr); sys.exit(1)
PY
}

run_model() { # model, fixture, run, extra generate args...
    local model="$1" fx="$2" r="$3"; shift 3
    local info k g steps w h
    info=$(prep "$fx" "$r") || { echo "FAIL: $r: fixture" >&2; fail=$((fail + 1)); return; }
    read -r k g steps w h <<<"$info"
    local args=(generate --model "$model" --prompt "$(cat "$T/$r/prompt")" --steps "$steps"
        --guidance "$g" --width "$w" --height "$h" --latents "$T/$r/lat.safetensors"
        --raw-out "$T/$r/raw.safetensors" --out "$T/$r/out.png" --seed 1)
    [ "$k" != 0 ] && args+=(--noise "$T/$r/noise.safetensors")
    [ -s "$T/$r/negative" ] && args+=(--negative "$(cat "$T/$r/negative")")
    if ! "$BIN" "${args[@]}" "$@" >"$T/$r/stdout" 2>"$T/$r/stderr"; then
        echo "FAIL: $r: exit $?: $(tail -2 "$T/$r/stderr")" >&2; fail=$((fail + 1)); return
    fi
    compare "$fx" "$r" || fail=$((fail + 1))
}
