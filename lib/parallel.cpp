#include <xtgrad/lib/parallel.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace xtgrad {

namespace {

// Helper threads that sleep on a condition variable between jobs: nothing spins against the BLAS threads.
class Pool {
public:
    ~Pool() {
        if (getpid() != pid_) {  // a forked child: the helpers are the parent's; leave their handles alone
            helpers_.release();
            return;
        }
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        work_.notify_all();
        for (std::thread& t : *helpers_) t.join();
    }

    void run(std::size_t n, std::size_t parts, void* ctx, detail::PartFn fn) {
        // another job running (another thread's, or this one's, nested), or a forked child: run it here
        if (getpid() != pid_ || busy_.exchange(true)) {
            fn(ctx, 0, n);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(m_);
            while (helpers_->size() + 1 < parts) {
                const std::size_t k = helpers_->size() + 1;
                helpers_->emplace_back([this, k] { serve(k); });
            }
            n_ = n;
            parts_ = parts;
            ctx_ = ctx;
            fn_ = fn;
            remaining_ = parts - 1;
            ++generation_;
        }
        work_.notify_all();
        fn(ctx, 0, n / parts);  // part 0 here
        {
            std::unique_lock<std::mutex> lock(m_);
            done_.wait(lock, [this] { return remaining_ == 0; });
        }
        busy_.store(false);
    }

private:
    void serve(std::size_t k) {
        std::uint64_t seen = 0;
        for (;;) {
            std::size_t n, parts;
            void* ctx;
            detail::PartFn fn;
            {
                std::unique_lock<std::mutex> lock(m_);
                work_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                if (k >= parts_) continue;  // this job has fewer parts than there are helpers
                n = n_, parts = parts_, ctx = ctx_, fn = fn_;
            }
            fn(ctx, k * n / parts, (k + 1) * n / parts);
            bool last;
            {
                std::lock_guard<std::mutex> lock(m_);
                last = --remaining_ == 0;
            }
            if (last) done_.notify_one();
        }
    }

    std::mutex m_;
    std::condition_variable work_, done_;
    std::unique_ptr<std::vector<std::thread>> helpers_ = std::make_unique<std::vector<std::thread>>();
    const pid_t pid_ = getpid();
    std::atomic<bool> busy_{false};
    bool stop_ = false;
    std::uint64_t generation_ = 0;
    std::size_t n_ = 0, parts_ = 0, remaining_ = 0;
    void* ctx_ = nullptr;
    detail::PartFn fn_ = nullptr;
};

Pool& pool() {
    static Pool p;
    return p;
}

std::atomic<std::size_t> g_threads{std::max(1u, std::thread::hardware_concurrency())};

}  // namespace

std::size_t parallel_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_parallel_threads(std::size_t n) { g_threads.store(std::max<std::size_t>(n, 1)); }

std::size_t parallel_parts(std::size_t n, std::size_t grain) {
    const std::size_t t = parallel_threads();
    if (t <= 1 || grain == 0 || n < 2 * grain) return 1;
    return std::min(t, n / grain);
}

namespace detail {
void parallel_run(std::size_t n, std::size_t parts, void* ctx, PartFn fn) { pool().run(n, parts, ctx, fn); }
}  // namespace detail

}  // namespace xtgrad
