// Comm over MPI (built with -Dmpi when MPI is found). Every MPI call of the process is made on one thread of its
// own, which MPI is initialised on (MPI_THREAD_FUNNELED): the trainer's thread hands it operations, and while
// nonblocking sums are outstanding it tests them every kPollMicroseconds, which is what makes them progress while
// backward runs (MPI progresses a nonblocking collective only inside MPI calls). Every wait has a deadline: past
// Comm::timeout() the run stops with an error naming the operation instead of hanging on a dead process.
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include <fmt/core.h>

#include <xtgrad/apps/lm/distributed.hpp>
#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {

constexpr int kPollMicroseconds = 100;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int world_rank() {
    int r = -1, up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

// Prints why and stops every process of the launch (MPI_Abort): the one way out of a collective that cannot end.
[[noreturn]] void fatal(const std::string& what, int status = 1) {
    std::fprintf(stderr, "rank %d: error: %s; stopping every process of the run\n", world_rank(), what.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);
}

void check(int rc, const char* op) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fatal(fmt::format("MPI {} failed: {}", op, std::string(text, static_cast<std::size_t>(len))));
}

// The thread that makes every MPI call of the process.
class MpiThread {
public:
    MpiThread() : thread_([this] { loop(); }) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return ready_; });
        if (init_error_) {
            lock.unlock();
            thread_.join();
            std::rethrow_exception(init_error_);
        }
    }

    ~MpiThread() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    // Runs f on the MPI thread and waits; f's exception is rethrown here.
    void call(const std::function<void()>& f) {
        std::exception_ptr error;
        bool done = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.push_back([&] {
                try {
                    f();
                } catch (...) {
                    error = std::current_exception();
                }
                std::lock_guard<std::mutex> l(mutex_);
                done = true;
                done_cv_.notify_all();
            });
        }
        cv_.notify_all();
        std::unique_lock<std::mutex> lock(mutex_);
        done_cv_.wait(lock, [&] { return done; });
        if (error) std::rethrow_exception(error);
    }

    // Starts a nonblocking sum on the MPI thread; returns at once. `done` runs there once the sum is complete.
    void post_sum(float* v, std::size_t n, MPI_Comm comm, double timeout, std::function<void()> done) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++outstanding_;
            jobs_.push_back([this, v, n, comm, timeout, done = std::move(done)]() mutable {
                Pending p{MPI_REQUEST_NULL, std::move(done), now(), timeout};
                check(MPI_Iallreduce(MPI_IN_PLACE, v, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm, &p.request),
                      "Iallreduce (gradients)");
                pending_.push_back(std::move(p));
            });
        }
        cv_.notify_all();
    }

    // Blocks until every posted sum is complete; meanwhile the MPI thread polls without pausing (nothing else
    // runs in the process then).
    void wait_sums() {
        std::unique_lock<std::mutex> lock(mutex_);
        if (outstanding_ == 0) return;
        urgent_ = true;
        cv_.notify_all();
        done_cv_.wait(lock, [&] { return outstanding_ == 0; });
        urgent_ = false;
    }

    // On the MPI thread: waits for r while the other requests progress; stops the run past the deadline.
    void wait(MPI_Request& r, const char* what, double timeout) {
        const double t0 = now();
        for (std::size_t spins = 0;; ++spins) {
            int flag = 0;
            check(MPI_Test(&r, &flag, MPI_STATUS_IGNORE), what);
            if (flag) return;
            progress();
            if (timeout > 0 && now() - t0 > timeout)
                fatal(fmt::format("no answer from the other processes for {:.0f} s in {} (a process died or hangs)",
                                  timeout, what));
            if (abort_status_ >= 0) fatal("stopped by another error", abort_status_);
            if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(kPollMicroseconds / 4));
            else std::this_thread::yield();
        }
    }

    // From any thread: the MPI thread stops every process with this status.
    void request_abort(int status) {
        abort_status_ = status;
        cv_.notify_all();
    }

    // Whether this thread initialised MPI (and so finalises it).
    bool owns_mpi() const { return owns_; }

private:
    struct Pending {
        MPI_Request request;
        std::function<void()> done;
        double started, timeout;
    };

    void loop() {
        try {
            int up = 0;
            MPI_Initialized(&up);
            if (!up) {
                int provided = 0;
                if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
                    throw Error("MPI_Init_thread failed");
                owns_ = true;
            } else {
                int level = 0;
                MPI_Query_thread(&level);
                if (level < MPI_THREAD_SERIALIZED)
                    throw Error("MPI was initialised by the program without MPI_THREAD_SERIALIZED: xtgrad makes its MPI "
                                "calls on a thread of its own");
            }
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        } catch (...) {
            init_error_ = std::current_exception();
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_ = true;
        }
        cv_.notify_all();
        if (init_error_) return;
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                if (jobs_.empty()) {
                    if (pending_.empty()) {
                        if (stopping_) break;
                        cv_.wait(lock, [&] { return !jobs_.empty() || stopping_ || abort_status_ >= 0; });
                    } else if (!urgent_) {  // backward is running: test now and then, leave it the core
                        cv_.wait_for(lock, std::chrono::microseconds(kPollMicroseconds));
                    }
                }
                if (!jobs_.empty()) {
                    job = std::move(jobs_.front());
                    jobs_.pop_front();
                }
            }
            if (abort_status_ >= 0) fatal("stopped after an error", abort_status_);
            if (job) job();
            progress();
            if (!job) std::this_thread::yield();  // urgent polling: still let another thread of this core run
        }
        if (owns_) MPI_Finalize();
    }

    // Tests the outstanding sums; runs the `done` of those complete, in order; enforces their deadlines.
    void progress() {
        while (!pending_.empty()) {
            Pending& p = pending_.front();
            int flag = 0;
            check(MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE), "Test (gradients)");
            if (!flag) {
                if (p.timeout > 0 && now() - p.started > p.timeout)
                    fatal(fmt::format("no answer from the other processes for {:.0f} s while summing gradients (a "
                                      "process died or hangs)", p.timeout));
                return;
            }
            p.done();
            pending_.pop_front();
            std::lock_guard<std::mutex> lock(mutex_);
            --outstanding_;
            if (outstanding_ == 0) done_cv_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    std::deque<std::function<void()>> jobs_;
    std::deque<Pending> pending_;  // the MPI thread's only
    std::size_t outstanding_ = 0;  // posted sums not done yet (under mutex_)
    std::atomic<int> abort_status_{-1};
    bool ready_ = false, stopping_ = false, owns_ = false;
    bool urgent_ = false;          // the trainer waits for the sums: poll without pausing (under mutex_)
    std::exception_ptr init_error_;
    std::thread thread_;
};

std::weak_ptr<MpiThread> g_thread;
bool g_finalised = false;
std::mutex g_thread_mutex;

std::shared_ptr<MpiThread> mpi_thread() {
    std::lock_guard<std::mutex> lock(g_thread_mutex);
    if (auto t = g_thread.lock()) return t;
    if (g_finalised) throw Error("MPI was already finalised in this process: it cannot start again");
    auto t = std::shared_ptr<MpiThread>(new MpiThread(), [](MpiThread* p) {
        const bool owned = p->owns_mpi();
        delete p;
        if (owned) g_finalised = true;
    });
    g_thread = t;
    return t;
}

class MpiComm final : public Comm {
public:
    MpiComm(std::shared_ptr<MpiThread> thread, MPI_Comm comm, bool owned)
        : thread_(std::move(thread)), comm_(comm), owned_(owned) {
        thread_->call([&] {
            int r = 0, n = 0;
            MPI_Comm_rank(comm_, &r);
            MPI_Comm_size(comm_, &n);
            rank_ = static_cast<std::size_t>(r);
            size_ = static_cast<std::size_t>(n);
            MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
            MPI_Comm local;
            check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, r, MPI_INFO_NULL, &local), "Comm_split_type");
            int lr = 0, ln = 0;
            MPI_Comm_rank(local, &lr);
            MPI_Comm_size(local, &ln);
            local_ = static_cast<std::size_t>(ln);
            int leaders = lr == 0 ? 1 : 0, machines = 0;
            check(MPI_Allreduce(&leaders, &machines, 1, MPI_INT, MPI_SUM, comm_), "Allreduce");
            machines_ = static_cast<std::size_t>(machines);
            MPI_Comm_free(&local);
        });
    }

    ~MpiComm() override {
        if (owned_) thread_->call([&] { MPI_Comm_free(&comm_); });
    }

    std::size_t rank() const override { return rank_; }
    std::size_t size() const override { return size_; }
    std::size_t local_size() const override { return local_; }
    std::string describe() const override {
        return fmt::format("{} processes (MPI, {} machine{})", size_, machines_, machines_ == 1 ? "" : "s");
    }

    void sum(double* v, std::size_t n) override {
        blocking("Iallreduce", [&](MPI_Request* r) {
            return MPI_Iallreduce(MPI_IN_PLACE, v, count(n), MPI_DOUBLE, MPI_SUM, comm_, r);
        });
    }
    void broadcast(float* v, std::size_t n) override {
        blocking("Ibcast", [&](MPI_Request* r) { return MPI_Ibcast(v, count(n), MPI_FLOAT, 0, comm_, r); });
    }
    void broadcast(std::uint64_t* v, std::size_t n) override {
        blocking("Ibcast", [&](MPI_Request* r) { return MPI_Ibcast(v, count(n), MPI_UINT64_T, 0, comm_, r); });
    }
    void gather(const float* mine, std::size_t n, float* all) override {
        blocking("Igather", [&](MPI_Request* r) {
            return MPI_Igather(mine, count(n), MPI_FLOAT, all, count(n), MPI_FLOAT, 0, comm_, r);
        });
    }
    void scatter(const float* all, float* mine, std::size_t n) override {
        blocking("Iscatter", [&](MPI_Request* r) {
            return MPI_Iscatter(all, count(n), MPI_FLOAT, mine, count(n), MPI_FLOAT, 0, comm_, r);
        });
    }
    void barrier() override {
        blocking("Ibarrier", [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
    }
    void start_sum(float* v, std::size_t n, std::function<void()> done) override {
        count(n);
        thread_->post_sum(v, n, comm_, timeout_, std::move(done));
    }
    void wait_sums() override { thread_->wait_sums(); }

    std::unique_ptr<Comm> first(std::size_t n) override {
        if (n == 0 || n > size_) throw ConfigError(fmt::format("Comm::first({}): the run has {} processes", n, size_));
        MPI_Comm sub = MPI_COMM_NULL;
        thread_->call([&] {
            check(MPI_Comm_split(comm_, rank_ < n ? 0 : MPI_UNDEFINED, static_cast<int>(rank_), &sub), "Comm_split");
        });
        if (sub == MPI_COMM_NULL) return nullptr;
        auto c = std::make_unique<MpiComm>(thread_, sub, true);
        c->set_timeout(timeout_);
        return c;
    }

    void abort(int status) override {
        thread_->request_abort(status);
        std::this_thread::sleep_for(std::chrono::seconds(10));  // MPI_Abort ends the process before this
        std::_Exit(status);
    }

private:
    static int count(std::size_t n) {
        if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
            throw Error(fmt::format("MPI: {} elements in one operation are more than MPI counts", n));
        return static_cast<int>(n);
    }

    // Starts a nonblocking collective on the MPI thread and waits for it there, with the deadline.
    template <class Start>
    void blocking(const char* what, Start&& start) {
        thread_->call([&] {
            MPI_Request r = MPI_REQUEST_NULL;
            check(start(&r), what);
            thread_->wait(r, what, timeout_);
        });
    }

    std::shared_ptr<MpiThread> thread_;
    MPI_Comm comm_;
    bool owned_;
    std::size_t rank_ = 0, size_ = 1, local_ = 1, machines_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_world() { return std::make_unique<MpiComm>(mpi_thread(), MPI_COMM_WORLD, false); }

}  // namespace xtgrad
