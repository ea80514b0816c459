// Persistent thread pool; see pool.h for why it looks the way it does.
#include "pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace orpo {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long an idle helper spins before it sleeps, in pause instructions (roughly 50-100 microseconds).
constexpr int kSpinIterations = 20000;

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int threads() const { return static_cast<int>(helpers_.size()) + 1; }

  void resize(int n) {
    if (n == threads()) return;
    stop();
    start(n);
  }

  void run(int64_t ntasks, TaskFn fn, void* ctx) {
    // Re-entrant or concurrent calls (e.g. from worker_threads) run serially instead of corrupting the job.
    bool expected = false;
    if (ntasks <= 1 || helpers_.empty() || ntasks >= (int64_t(1) << 31) ||
        !busy_.compare_exchange_strong(expected, true)) {
      for (int64_t t = 0; t < ntasks; t++) fn(ctx, t);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    done_.store(0, std::memory_order_relaxed);
    const int n = threads();
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      gen = generation_.load(std::memory_order_relaxed) + 1;
      // a new job: per worker, its generation in the high half and the next unclaimed task of its home range in
      // the low half
      for (int w = 0; w < n; w++) {
        ranges_[w].end.store(home_begin(w + 1, ntasks, n), std::memory_order_relaxed);
        ranges_[w].claim.store((gen << 32) | uint64_t(home_begin(w, ntasks, n)), std::memory_order_release);
      }
      generation_.store(gen, std::memory_order_release);
    }
    wake_.notify_all();
    work(gen, 0);
    // Wait for tasks that helpers claimed, not for helpers themselves: a helper that has not woken yet (its core
    // taken by another process) simply finds no task left for this generation, so an oversubscribed machine
    // never stalls a kernel on a sleeping thread.
    for (int spins = 0; done_.load(std::memory_order_acquire) < ntasks; spins++) {
      if (spins < kSpinIterations) cpu_relax();
      else std::this_thread::yield();
    }
    // Close the job before the next one rewrites fn_/ctx_ and the ranges: generation 0 is never a helper's, so a
    // helper still holding one of this job's claim words fails its compare-and-swap and reads nothing more of it.
    for (int w = 0; w < n; w++) ranges_[w].claim.store(0, std::memory_order_release);
    busy_.store(false, std::memory_order_release);
  }

 private:
  void start(int n) {
    if (n < 1) n = 1;
    stopping_ = false;
    // The generation is read here, not in the new thread: a job posted before the thread first runs must
    // still count as new to it, or run() would wait forever for its check-in.
    const uint64_t seen = generation_.load(std::memory_order_acquire);
    ranges_ = std::vector<Range>(static_cast<size_t>(n));
    for (int i = 1; i < n; i++) helpers_.emplace_back([this, seen, i] { helper(seen, i); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : helpers_) t.join();
    helpers_.clear();
  }

  /**
   * The first task of worker w's home range: the tasks cut into threads() contiguous ranges, in order, rounded up so
   * that a job of fewer tasks than threads starts on the calling thread (worker 0) and spreads its tasks over the
   * workers in proportion (task t of 2 on 16 threads: workers 0 and 8, where a job of 16 tasks puts the same rows).
   */
  static int64_t home_begin(int w, int64_t ntasks, int n) { return (ntasks * w + n - 1) / n; }

  /**
   * Claims and runs tasks of job `gen` until none is left or a newer job replaced it: worker `self` runs its home
   * range first, then takes what is left of the others' (a late or descheduled helper delays nothing).
   *
   * Home ranges put task t on the same worker in every job with the same task count: the rows one kernel wrote on
   * a core are the rows the next kernel reads there (a parallel_for's chunk w, a GEMM's row strip w), from that
   * core's cache instead of the other core's. With one shared counter every job dealt its tasks to whichever
   * worker came first.
   */
  void work(uint64_t gen, int self) {
    const int n = static_cast<int>(ranges_.size());
    for (int i = 0; i < n; i++) {
      Range& r = ranges_[(self + i) % n];
      for (;;) {
        uint64_t c = r.claim.load(std::memory_order_acquire);
        // compare-and-swap, not fetch_add: a late helper must never bump the counter of a job it does not belong
        // to; `end` is read after the generation matched (it was stored before the claim word was released)
        int64_t t;
        do {
          t = static_cast<int64_t>(c & 0xffffffffu);
          if ((c >> 32) != gen || t >= r.end.load(std::memory_order_relaxed)) break;
        } while (!r.claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire));
        if ((c >> 32) != gen) return;  // the job is closed: nothing of it is left anywhere
        if (t >= r.end.load(std::memory_order_relaxed)) break;
        fn_(ctx_, t);
        done_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }

  void helper(uint64_t seen, int self) {
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
        cpu_relax();
        spins++;
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        seen = generation_.load(std::memory_order_acquire);
      }
      work(seen, self);
    }
  }

  std::vector<std::thread> helpers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  /** a worker's home range of the current job: the claim word (generation, next task) and its end */
  struct alignas(64) Range {
    std::atomic<uint64_t> claim{0};
    std::atomic<int64_t> end{0};  // atomic only so that a helper's late read of a finished job is no data race
  };
  std::vector<Range> ranges_;
  std::atomic<int64_t> done_{0};
  std::atomic<bool> busy_{false};
  bool stopping_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
};

int default_threads() {
  if (const char* env = std::getenv("ORPO_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
  static Pool* p = new Pool(default_threads());
  return *p;
}

}  // namespace

void pool_run(int64_t ntasks, TaskFn fn, void* ctx) { pool().run(ntasks, fn, ctx); }
int pool_threads() { return pool().threads(); }
void pool_set_threads(int n) { pool().resize(n); }

namespace {
std::atomic<bool> g_matmul_bf16{false};
}
bool matmul_bf16() { return g_matmul_bf16.load(std::memory_order_relaxed); }
void set_matmul_bf16(bool on) { g_matmul_bf16.store(on, std::memory_order_relaxed); }

}  // namespace orpo
