/*
 * test_config.c — model config.json getters on hostile values (src/model/config.c).
 *
 * Regression for fuzz_config: an integer key holding a real far outside long long (1e92) was
 * cast before its range was checked (undefined behaviour, UBSan abort); it must be a clear
 * "must be an integer" error, while integral reals such as 4.0 are still accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "model/config.h"
#include "test.h"

int main(void)
{
    char path[] = "/tmp/m2p-test-config-XXXXXX.json";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    fputs("{\"huge\": 1e92, \"neg\": -1e300, \"four\": 4.0, \"half\": 2.5}", f);
    fclose(f);
    m2p_config *c = NULL;
    CHECK_INT(config_open(path, &c), 0);
    int v = 0;
    CHECK_INT(config_int(c, "huge", &v), M2P_EFORMAT);
    CHECK_INT(config_int(c, "neg", &v), M2P_EFORMAT);
    CHECK_INT(config_int(c, "half", &v), M2P_EFORMAT);
    CHECK_INT(config_int(c, "four", &v), 0);
    CHECK_INT(v, 4);
    config_free(c);
    unlink(path);
    TEST_DONE();
}
