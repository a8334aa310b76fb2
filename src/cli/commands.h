/*
 * commands.h — the CLI's subcommands, one file each (cmd_<name>.c).
 * Each takes argc/argv starting at the subcommand's own name and returns the exit status.
 */
#ifndef M2P_CLI_COMMANDS_H
#define M2P_CLI_COMMANDS_H

int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_prompt(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_store(int argc, char **argv);

/* The one parser of an integer option, for every command: v (may be NULL) from lo to hi into
 * *out: 0, or -1 with "mus2pic CMD: OPT needs an integer from LO to HI, not 'V'" printed. */
int cli_int_arg(const char *cmd, const char *opt, const char *v, int lo, int hi, int *out);

#endif
