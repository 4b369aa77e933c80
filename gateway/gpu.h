/*
 * gpu: GPU memory as a resource: devices with a size ("gpu NAME
 * memory=SIZE"), what each upstream's replica needs ("gpu_memory"), where
 * replicas are placed, and eviction of idle ones when a wake does not fit
 * (see gpu.c). Without "gpu" lines it lets everything start.
 *
 * Ownership: the device table is gpu.c's, rebuilt from each conf; a
 * replica's device (rep->gpu) is gpu.c's part of the replica.
 */
#ifndef WG_GPU_H
#define WG_GPU_H

struct conf;
struct upstream;
struct json_t;

/* Adds the placement gate and the move subscriber (at start, once; before fleet_init's gate). */
void gpu_init(void);
/* The devices of conf c (start and reload). */
void gpu_configure(const struct conf *c);
/* 1 while u waits for GPU memory to start or wake a replica. */
int gpu_waiting_for_memory(const struct upstream *u);
/* The name of device d, or NULL. */
const char *gpu_name(int d);
/* The memory gauges (every tick). */
void gpu_tick(void);
/* /status: each device with its memory, use and occupants. */
struct json_t *gpu_status_json(void);

#endif
