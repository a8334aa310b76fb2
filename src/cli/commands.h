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

#endif
