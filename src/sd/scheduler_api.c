/*
 * scheduler_api.c — the schedulers as the public API names them (m2p_scheduler_known,
 * m2p_scheduler_config_check), so programs that see only include/mus2pic.h (`mus2pic generate
 * --scheduler/--scheduler-config`) check their options before a model loads. The reading is
 * scheduler.c's (sched_config_load), the one m2p_generate uses.
 */
#include "mus2pic.h"
#include "sd/scheduler.h"

int m2p_scheduler_known(const char *name)
{
    return name && sched_kind_from_name(name) >= 0;
}

int m2p_scheduler_config_check(const char *path, const char *scheduler)
{
    sched_config sc;
    return sched_config_load(path, scheduler ? sched_kind_from_name(scheduler) : -1, &sc);
}
