/*
 * cmd_prompt.c — `mus2pic prompt SOURCE [--version v1|v3|v4|llm]`: a song -> one image prompt.
 * v1, v3, v4 come from the rules on the analysed features (v4 is the default, as the
 * original's); llm asks an OpenAI-compatible chat endpoint with the song, band and genre.
 * Prints the prompt and the negative prompt, or JSON with --json.
 * Exit status: 0 done, 1 failure (message on stderr), 2 usage error.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/song_args.h"
#include "mus2pic.h"

enum { OPT_VERSION = SONG_OPT_END, OPT_LLM_URL, OPT_LLM_MODEL, OPT_LLM_KEY };

static void usage(FILE *f)
{
    fprintf(f, "usage: mus2pic prompt SOURCE [options]\n\n"
               "SOURCE is a YouTube (or any yt-dlp) URL, a direct http(s) audio URL, or a file.\n\n"
               "options:\n"
               "  --version V         v1, v3, v4 (default) or llm\n"
               "  --llm-url URL       OpenAI-compatible base URL (default $MUS2PIC_LLM_URL or\n"
               "                      https://api.openai.com/v1)\n"
               "  --llm-model NAME    default $MUS2PIC_LLM_MODEL or gpt-4o-mini\n"
               "  --llm-key KEY       default $OPENAI_API_KEY\n" SONG_OPTIONS_HELP
               "  -h, --help          this text\n");
}

int cmd_prompt(int argc, char **argv)
{
    song_args a;
    song_args_init(&a);
    m2p_llm_params lp = m2p_llm_default_params();
    int version = M2P_PROMPT_V4;
    const char *vname = "v4";
    static const struct option opts[] = {SONG_LONG_OPTIONS,
                                         {"version", required_argument, 0, OPT_VERSION},
                                         {"llm-url", required_argument, 0, OPT_LLM_URL},
                                         {"llm-model", required_argument, 0, OPT_LLM_MODEL},
                                         {"llm-key", required_argument, 0, OPT_LLM_KEY},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case '?':
            usage(stderr);
            return 2;
        case OPT_VERSION:
            if (!strcmp(optarg, "v1") || !strcmp(optarg, "1"))
                version = M2P_PROMPT_V1, vname = "v1";
            else if (!strcmp(optarg, "v3") || !strcmp(optarg, "3"))
                version = M2P_PROMPT_V3, vname = "v3";
            else if (!strcmp(optarg, "v4") || !strcmp(optarg, "4"))
                version = M2P_PROMPT_V4, vname = "v4";
            else if (!strcmp(optarg, "llm"))
                version = M2P_PROMPT_LLM, vname = "llm";
            else {
                fprintf(stderr, "mus2pic prompt: --version wants v1, v3, v4 or llm, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_LLM_URL:
            lp.base_url = optarg;
            break;
        case OPT_LLM_MODEL:
            lp.model = optarg;
            break;
        case OPT_LLM_KEY:
            lp.api_key = optarg;
            break;
        default: {
            int rc = song_args_option(&a, "prompt", c, optarg);
            if (rc)
                return rc;
        }
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "mus2pic prompt: %s\n\n",
                optind >= argc ? "give one SOURCE (a URL or a file)" : "give only one SOURCE");
        usage(stderr);
        return 2;
    }
    a.source = argv[optind];
    /* Before the analysis (a minute on a long song): the LLM needs a key. */
    if (version == M2P_PROMPT_LLM && (!lp.api_key || !*lp.api_key)) {
        fprintf(stderr, "mus2pic prompt: --version llm needs an API key: pass --llm-key KEY "
                        "or set OPENAI_API_KEY\n");
        return 2;
    }
    m2p_analysis an;
    if (song_args_analyze(&a, "prompt", &an) != 0)
        return 1;
    char *llm = NULL;
    int tokens = 0;
    const char *prompt = NULL, *neg = NULL;
    int status = 0;
    switch (version) {
    case M2P_PROMPT_V1:
        prompt = an.prompt_v1, neg = an.negative_v1;
        break;
    case M2P_PROMPT_V3:
        prompt = an.prompt_v3, neg = an.negative_v3;
        break;
    case M2P_PROMPT_V4:
        prompt = an.prompt_v4, neg = an.negative_v4;
        break;
    default:
        /* the LLM writes the prompt; the negative prompt is V4's, the original's default */
        if (m2p_prompt_llm(&lp, an.song, an.band, an.genre, &llm, &tokens) != 0) {
            fprintf(stderr, "mus2pic prompt: %s\n", m2p_errmsg());
            status = 1;
            goto out;
        }
        prompt = llm, neg = an.negative_v4;
    }
    if (a.json) {
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version", vname, "prompt",
                      prompt ? prompt : "", "negative_prompt", neg ? neg : "", "band", an.band,
                      "song", an.song, "genre", an.genre, "genre_source", an.genre_source);
        if (o && version == M2P_PROMPT_LLM)
            json_object_set_new(o, "tokens_used", json_integer(tokens));
        char *j = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (j)
            puts(j);
        else {
            fprintf(stderr, "mus2pic prompt: out of memory writing JSON\n");
            status = 1;
        }
        free(j);
        json_decref(o);
    } else {
        printf("%s\nnegative: %s\n", prompt ? prompt : "", neg ? neg : "");
    }
out:
    free(llm);
    m2p_analysis_free(&an);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
