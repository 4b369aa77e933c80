/*
 * emu: a stand-in CUDA runtime for running ops_kernels.cuh on the host (see
 * kernel-emu.cc for what it checks and how). Included, as one translation
 * unit, by the emulation harness (kernel-emu.cc) and by the fake CUDA runtime
 * (cuda-fake.cc) that runs ops_cuda.cu's host code on top of it; its state is
 * static, so each program includes it once.
 *
 * The includer defines, before ops_kernels.cuh:
 *   int ops_launch_failed(const char *what, char *err, size_t errlen);
 * emu_launch_hook, when set, runs before each launch: non-zero skips it (an
 * injected launch failure).
 */
#ifndef WG_EMU_H
#define WG_EMU_H

#define OPS_EMU 1

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <type_traits>
#include <vector>

/* ---- the stand-in runtime ---- */

struct dim3 {
	unsigned x, y, z;
	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

/* What one element of an allocation has seen during the current launch. */
struct emu_shadow {
	int wb, wt, wp;		/* last write: block, thread, phase (-1: none) */
	int rb, rt, rp;		/* last read, likewise */
	unsigned char rmulti;	/* several threads read it in (rb, rp) */
	unsigned char rblocks;	/* blocks other than rb read it too */
	unsigned writes;
};

struct emu_mem {
	const char *name;
	std::vector<float> data;
	std::vector<emu_shadow> sh;
	int shared;
	unsigned long gen;	/* shared: the block its contents belong to */
};

struct emu_thread {
	dim3 tid;
	int linear;
	int state;		/* 0 running, 1 at a barrier, 2 done */
	ucontext_t ctx;
	char *stack;
};

#define EMU_STACK (128 * 1024)
#define EMU_MAX_THREADS 1024
#define EMU_SHARED_MAX 49152	/* bytes of shared memory a block may use without opting in */

static emu_thread emu_threads[EMU_MAX_THREADS];
static emu_thread *emu_cur;
static ucontext_t emu_sched;
static dim3 emu_block, emu_grid, emu_bdim;
static int emu_block_lin, emu_phase;
static unsigned long emu_block_gen;
static std::function<void()> emu_body;
static const char *emu_kernel = "";
static std::vector<emu_mem *> emu_globals;
static emu_mem emu_dyn = { "dynamic shared", {}, {}, 1, 0 };
static int emu_errors, emu_launch_bad;
static int (*emu_launch_hook)(const char *kernel);
static const char *emu_printed[16];	/* the kinds of error (their formats) this case has printed */
static char emu_launch_err[256];

#define threadIdx (emu_cur->tid)
#define blockIdx emu_block
#define blockDim emu_bdim
#define gridDim emu_grid
#define __global__
#define __restrict__

static void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emu_fail(const char *fmt, ...)
{
	va_list ap;

	int k;

	/* The first error of each kind in a case says what is wrong; the rest are counted. */
	emu_errors++;
	for (k = 0; k < 16 && emu_printed[k] && emu_printed[k] != fmt; k++)
		;
	if (k == 16 || emu_printed[k])
		return;
	emu_printed[k] = fmt;
	fprintf(stderr, "kernel-emu: %s block (%u,%u) thread (%u,%u) phase %d: ", emu_kernel, emu_block.x,
		emu_block.y, emu_cur ? emu_cur->tid.x : 0, emu_cur ? emu_cur->tid.y : 0, emu_phase);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void emu_mem_reset(emu_mem *m)
{
	emu_shadow s = { -1, -1, -1, -1, -1, -1, 0, 0, 0 };

	for (auto &e : m->sh)
		e = s;
}

/* Shared memory starts each block unwritten (and filled with NaN, as garbage would be). */
static void emu_shared_enter(emu_mem *m)
{
	if (m->gen == emu_block_gen)
		return;
	m->gen = emu_block_gen;
	emu_mem_reset(m);
	for (auto &v : m->data)
		v = NAN;
}

static int emu_in_bounds(emu_mem *m, ptrdiff_t i, const char *op)
{
	if (!m) {
		emu_fail("%s through a null pointer", op);
		return 0;
	}
	if (m->shared)
		emu_shared_enter(m);
	if (i < 0 || (size_t)i >= m->data.size()) {
		emu_fail("%s of %s[%td], outside its %zu elements", op, m->name, i, m->data.size());
		return 0;
	}
	return 1;
}

static float emu_load(emu_mem *m, ptrdiff_t i)
{
	int b = emu_block_lin, t = emu_cur->linear, p = emu_phase;

	if (!emu_in_bounds(m, i, "read"))
		return 0.0f;
	emu_shadow &s = m->sh[i];
	if (s.wb >= 0 && (s.wb != b || (s.wt != t && s.wp == p)))
		emu_fail("race: reads %s[%td], written by thread %d of block %d with no barrier between",
			m->name, i, s.wt, s.wb);
	if (m->shared && s.wb < 0)
		emu_fail("reads %s[%td], which no thread of this block wrote", m->name, i);
	if (s.rb == b && s.rp == p) {
		if (s.rt != t)
			s.rmulti = 1;
	} else {
		if (s.rb >= 0 && s.rb != b)
			s.rblocks = 1;
		s.rb = b;
		s.rt = t;
		s.rp = p;
		s.rmulti = 0;
	}
	return m->data[i];
}

static void emu_store(emu_mem *m, ptrdiff_t i, float v)
{
	int b = emu_block_lin, t = emu_cur->linear, p = emu_phase;

	if (!emu_in_bounds(m, i, "write"))
		return;
	emu_shadow &s = m->sh[i];
	if (s.wb >= 0 && (s.wb != b || (s.wt != t && s.wp == p)))
		emu_fail("race: writes %s[%td], written by thread %d of block %d with no barrier between",
			m->name, i, s.wt, s.wb);
	if (s.rblocks || (s.rb >= 0 && s.rb != b) || (s.rb == b && s.rp == p && (s.rt != t || s.rmulti)))
		emu_fail("race: writes %s[%td], read by thread %d of block %d with no barrier between",
			m->name, i, s.rt, s.rb);
	s.wb = b;
	s.wt = t;
	s.wp = p;
	s.writes++;
	m->data[i] = v;
}

template <class T> struct emu_ref {
	emu_mem *m;
	ptrdiff_t i;

	operator float() const { return emu_load(m, i); }
	emu_ref &operator=(float v)
	{
		static_assert(!std::is_const<T>::value, "a kernel writes to its input");
		emu_store(m, i, v);
		return *this;
	}
	emu_ref &operator=(const emu_ref &o) { return *this = (float)o; }
	emu_ref &operator+=(float v) { return *this = (float)*this + v; }
	emu_ref &operator/=(float v) { return *this = (float)*this / v; }
};

template <class T> struct emu_ptr {
	emu_mem *m;
	ptrdiff_t off;

	emu_ptr() : m(NULL), off(0) {}
	emu_ptr(emu_mem *mm, ptrdiff_t o) : m(mm), off(o) {}
	template <class U> emu_ptr(const emu_ptr<U> &o) : m(o.m), off(o.off) {}
	emu_ref<T> operator[](ptrdiff_t i) const { return emu_ref<T>{ m, off + i }; }
	emu_ptr operator+(ptrdiff_t i) const { return emu_ptr(m, off + i); }
};

/* A __shared__ float name[R][C]: one per kernel, its contents per block. */
template <int R, int C> struct emu_shared2 {
	emu_mem mem;
	struct row {
		emu_mem *m;
		int r;
		emu_ref<float> operator[](int c) const
		{
			if (c < 0 || c >= C)
				emu_fail("%s[%d][%d]: column outside [0, %d)", m->name, r, c, C);
			return emu_ref<float>{ m, (ptrdiff_t)r * C + c };
		}
	};
	explicit emu_shared2(const char *name)
	{
		mem.name = name;
		mem.data.assign((size_t)R * C, 0.0f);
		mem.sh.resize((size_t)R * C);
		mem.shared = 1;
		mem.gen = 0;
	}
	row operator[](int r)
	{
		if (r < 0 || r >= R)
			emu_fail("%s[%d]: row outside [0, %d)", mem.name, r, R);
		return row{ &mem, r };
	}
};

static void emu_barrier(void)
{
	emu_cur->state = 1;
	swapcontext(&emu_cur->ctx, &emu_sched);
}

static void emu_trampoline(void)
{
	emu_body();
	emu_cur->state = 2;
	/* uc_link returns to the scheduler */
}

typedef int ops_stream;
#define OPS_IN(T) emu_ptr<const T>
#define OPS_OUT(T) emu_ptr<T>
#define OPS_IO(T) emu_ptr<T>
#define OPS_SHARED2(T, name, r, c) static emu_shared2<r, c> name(#name)
#define OPS_SHARED_DYN(T, name) emu_ptr<float> name(&emu_dyn, 0)
#define OPS_SYNC() emu_barrier()
typedef emu_ptr<float> ops_dptr;

/* What a launch promises to write: [off, off+n) of m, each element lo..hi times, nothing else. */
struct emu_expect {
	emu_mem *m;
	ptrdiff_t off;
	size_t n;
	unsigned lo, hi;
};

static void emu_launch(const char *name, dim3 grid, dim3 block, size_t shmem, std::function<void()> body,
	emu_expect ex);

#define OPS_LAUNCH(kernel, grid, block, shmem, stream, ...) \
	emu_launch(#kernel, dim3(grid), dim3(block), (shmem), [=]() { kernel(__VA_ARGS__); }, \
		emu_expect_of(dim3(grid), kernel, __VA_ARGS__))

/*
 * What each kernel writes, from its arguments; declared with the kernels'
 * parameter lists (a kernel whose list changes no longer finds its overload
 * and the harness does not compile until this is updated).
 */
static emu_expect emu_expect_of(dim3, void (*)(OPS_IN(float), OPS_IN(float), OPS_IN(float), OPS_OUT(float),
	int, int, int, int), OPS_IN(float), OPS_IN(float), OPS_IN(float), OPS_OUT(float) y, int batch, int,
	int out, int)
{
	return emu_expect{ y.m, y.off, (size_t)batch * out, 1, 1 };
}

static emu_expect emu_expect_of(dim3, void (*)(OPS_IO(float), OPS_IN(float), size_t, int, int), OPS_IO(float) y,
	OPS_IN(float), size_t n, int, int)
{
	return emu_expect{ y.m, y.off, n, 1, 1 };
}

static emu_expect emu_expect_of(dim3, void (*)(OPS_IO(float), size_t), OPS_IO(float) x, size_t n)
{
	return emu_expect{ x.m, x.off, n, 0, 1 };
}

static emu_expect emu_expect_of(dim3 grid, void (*)(OPS_IO(float), int), OPS_IO(float) x, int dim)
{
	return emu_expect{ x.m, x.off, (size_t)grid.x * dim, 2, 2 };
}

/* A fresh context at the kernel's start; apart, so that getcontext()'s second return clobbers no loop. */
static void __attribute__((noinline)) emu_thread_init(emu_thread *th)
{
	getcontext(&th->ctx);
	th->ctx.uc_stack.ss_sp = th->stack;
	th->ctx.uc_stack.ss_size = EMU_STACK;
	th->ctx.uc_link = &emu_sched;
	makecontext(&th->ctx, emu_trampoline, 0);
}

/* Runs one block: every thread until all are done, phase by phase. */
static void emu_run_block(int nthreads)
{
	emu_block_gen++;
	emu_phase = 0;
	for (int t = 0; t < nthreads; t++) {
		emu_thread *th = &emu_threads[t];

		th->linear = t;
		th->tid = dim3(t % emu_bdim.x, (t / emu_bdim.x) % emu_bdim.y, t / (emu_bdim.x * emu_bdim.y));
		th->state = 0;
		if (!th->stack && !(th->stack = (char *)malloc(EMU_STACK))) {
			fprintf(stderr, "kernel-emu: out of memory for thread stacks\n");
			abort();
		}
		emu_thread_init(th);
	}
	for (;;) {
		int done = 0, waiting = 0;

		for (int t = 0; t < nthreads; t++) {
			emu_cur = &emu_threads[t];
			if (emu_cur->state == 2)
				continue;
			emu_cur->state = 0;
			swapcontext(&emu_sched, &emu_cur->ctx);
		}
		for (int t = 0; t < nthreads; t++) {
			done += emu_threads[t].state == 2;
			waiting += emu_threads[t].state == 1;
		}
		emu_cur = NULL;
		if (done == nthreads)
			return;
		if (done) {
			emu_fail("%d threads wait at a barrier that %d others of the block never reach", waiting, done);
			return;	/* the waiting ones are abandoned, as a hung block would be */
		}
		emu_phase++;
	}
}

static void emu_launch(const char *name, dim3 grid, dim3 block, size_t shmem, std::function<void()> body,
	emu_expect ex)
{
	unsigned long nthreads = (unsigned long)block.x * block.y * block.z;

	emu_kernel = name;
	if (emu_launch_hook && emu_launch_hook(name))
		return;
	if (nthreads == 0 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
	    grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
	    shmem > EMU_SHARED_MAX) {
		snprintf(emu_launch_err, sizeof(emu_launch_err),
			"invalid launch: grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of shared memory",
			grid.x, grid.y, grid.z, block.x, block.y, block.z, shmem);
		emu_launch_bad = 1;
		return;
	}
	for (auto *m : emu_globals)
		emu_mem_reset(m);
	emu_dyn.data.assign(shmem / sizeof(float), 0.0f);
	emu_dyn.sh.resize(emu_dyn.data.size());
	emu_dyn.gen = 0;
	emu_body = body;
	emu_grid = grid;
	emu_bdim = block;
	for (unsigned z = 0; z < grid.z; z++)
		for (unsigned y = 0; y < grid.y; y++)
			for (unsigned x = 0; x < grid.x; x++) {
				emu_block = dim3(x, y, z);
				emu_block_lin = (int)((z * grid.y + y) * grid.x + x);
				emu_run_block((int)nthreads);
			}
	emu_block = dim3(0, 0, 0);
	for (auto *m : emu_globals)
		for (size_t i = 0; i < m->sh.size(); i++) {
			int inside = m == ex.m && (ptrdiff_t)i >= ex.off && (ptrdiff_t)i < ex.off + (ptrdiff_t)ex.n;
			unsigned w = m->sh[i].writes;

			if (inside && (w < ex.lo || w > ex.hi))
				emu_fail("%s[%zu] written %u times (the kernel promises %u to %u)", m->name, i, w, ex.lo,
					ex.hi);
			else if (!inside && w)
				emu_fail("%s[%zu] written %u times, outside what the kernel writes", m->name, i, w);
		}
}

/* ---- device memory ---- */

static emu_mem *emu_alloc(const char *name, size_t n)
{
	emu_mem *m = new emu_mem;

	m->name = name;
	m->data.assign(n, NAN);
	m->sh.resize(n);
	m->shared = 0;
	m->gen = 0;
	emu_globals.push_back(m);
	return m;
}

/* Frees one allocation; 0, or -1 when m is not one. */
static int __attribute__((unused)) emu_free(emu_mem *m)
{
	for (size_t i = 0; i < emu_globals.size(); i++)
		if (emu_globals[i] == m) {
			emu_globals.erase(emu_globals.begin() + (ptrdiff_t)i);
			delete m;
			return 0;
		}
	return -1;
}

static void __attribute__((unused)) emu_free_all(void)
{
	for (auto *m : emu_globals)
		delete m;
	emu_globals.clear();
}

#endif
