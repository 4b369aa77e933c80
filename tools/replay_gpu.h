/*
 * replay_gpu: many models on one GPU, in the simulated time of a trace.
 * Each upstream of the trace is a model with a memory size and a boot
 * (reload) time; the device holds as many as fit. A request for a model
 * that is not loaded waits for its load, and for memory first when the
 * device is full and nothing idle can be evicted. Three eviction policies:
 *
 *   lru            evict the least recently used idle models until the new
 *                  one fits (Ollama, llama.cpp's router)
 *   one-at-a-time  only one model loaded at a time (llama-swap's default
 *                  group): a load waits until the loaded one is idle
 *   penalty        wakegate's choice, gateway/evict.c, with each model's
 *                  idle-gap histogram learned online from the trace as the
 *                  gateway learns it (gateway/keepalive.c)
 *   oracle         a bound, not a policy: it knows the future and evicts
 *                  the models whose next request is farthest off (a model
 *                  that would reach its idle_timeout first counts as never
 *                  asked again), cheapest first with the same pruning as
 *                  evict_choose; what any choice from the past could at
 *                  best approach (Belady's rule, greedy over sizes)
 *
 * In all three a model with requests in flight (or waiting for its load)
 * is never evicted, and an idle model stays loaded for idle_timeout after
 * its last request ends when nothing needs its memory.
 * Everything here is owned by the caller; replay_gpu_run allocates only
 * what it frees before returning, plus r->hold (freed by replay_gpu_free).
 */
#ifndef WG_REPLAY_GPU_H
#define WG_REPLAY_GPU_H

#include "tools/trace.h"

#include <stdint.h>
#include <stdio.h>

enum gpu_policy { GPU_LRU, GPU_ONE, GPU_PENALTY, GPU_ORACLE };

/* What the replay knows of one model (the trace's upstream of the same index). */
struct gpu_model_spec {
	int64_t bytes;		/* memory one loaded copy takes */
	int64_t boot_ms;	/* load time: boot + warmup */
};

struct gpu_conf {
	int64_t device_bytes;
	int64_t idle_timeout_ms;	/* an idle model unloads after this (5m) */
	const struct gpu_model_spec *spec;	/* [tr->nup] */
	FILE *events;		/* non-NULL: the event log (man page, EVENTS) */
};

/* Per model, and in total, what a policy did. */
struct gpu_count {
	uint64_t loads, evictions, reqs, mem_waits;
	double resident_ms;	/* time loading or loaded */
	double hold_ms;		/* sum of the waits */
};

struct gpu_result {
	enum gpu_policy policy;
	const char *name;
	struct gpu_count all;
	struct gpu_count *model;	/* [nup], owned */
	double device_ms;	/* the device busy or loaded: at least one model on it */
	int64_t *hold;		/* per request, owned */
	size_t nhold;
	int64_t peak_bytes;	/* the most memory in use at once */
	int peak_models;
	uint64_t lru_choices;	/* penalty: choices that fell back to LRU for want of history */
};

/* Parses "NAME=SIZE[,BOOT]" (SIZE as 512m, 8g, 1.5g; BOOT a time, default
 * boot_ms) into *name (pointing into spec, length *nlen) and s. Returns 0, or -1. */
int replay_gpu_parse_model(const char *spec, int64_t boot_ms, const char **name, size_t *nlen,
	struct gpu_model_spec *s);

/* "8g", "512m", "1.5g", "4096" (bytes); 0, or -1 when not a size. */
int replay_gpu_parse_size(const char *s, int64_t *bytes);

/* Replays tr (any order) under policy p. Returns 0, or -1 when out of memory. */
int replay_gpu_run(const struct gpu_conf *c, const struct trace *tr, enum gpu_policy p,
	struct gpu_result *r);
void replay_gpu_free(struct gpu_result *r);

#endif
