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
    ntasks_ = ntasks;
    done_.store(0, std::memory_order_relaxed);
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      gen = generation_.load(std::memory_order_relaxed) + 1;
      // a new job: its generation in the high half, the next unclaimed task in the low half
      claim_.store(gen << 32, std::memory_order_release);
      generation_.store(gen, std::memory_order_release);
    }
    wake_.notify_all();
    work(gen);
    // Wait for tasks that helpers claimed, not for helpers themselves: a helper that has not woken yet (its core
    // taken by another process) simply finds no task left for this generation, so an oversubscribed machine
    // never stalls a kernel on a sleeping thread.
    for (int spins = 0; done_.load(std::memory_order_acquire) < ntasks; spins++) {
      if (spins < kSpinIterations) cpu_relax();
      else std::this_thread::yield();
    }
    // Close the job before the next one rewrites fn_/ctx_/ntasks_: generation 0 is never a helper's, so a helper
    // still holding this job's claim word fails its compare-and-swap and reads nothing more of it.
    claim_.store(0, std::memory_order_release);
    busy_.store(false, std::memory_order_release);
  }

 private:
  void start(int n) {
    if (n < 1) n = 1;
    stopping_ = false;
    // The generation is read here, not in the new thread: a job posted before the thread first runs must
    // still count as new to it, or run() would wait forever for its check-in.
    const uint64_t seen = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; i++) helpers_.emplace_back([this, seen] { helper(seen); });
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

  /** Claims and runs tasks of job `gen` until none is left or a newer job replaced it. */
  void work(uint64_t gen) {
    for (;;) {
      uint64_t c = claim_.load(std::memory_order_acquire);
      // compare-and-swap, not fetch_add: a late helper must never bump the counter of a job it does not belong to
      do {
        if ((c >> 32) != gen || static_cast<int64_t>(c & 0xffffffffu) >= ntasks_) return;
      } while (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire));
      fn_(ctx_, static_cast<int64_t>(c & 0xffffffffu));
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void helper(uint64_t seen) {
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
      work(seen);
    }
  }

  std::vector<std::thread> helpers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> busy_{false};
  bool stopping_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t ntasks_ = 0;
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
