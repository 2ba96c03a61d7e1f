// Data-parallel training over several processes: what the processes do together (Comm: one process, or MPI when
// the program was built with it and started by an MPI launcher), where a process's streams lie in the whole batch,
// and the gradient reduction that runs while backward goes on (GradientSync). docs/distributed.md explains it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// The processes of a run, ranked 0 .. size() - 1, and the collective operations a data-parallel trainer needs.
// Every process calls the same collective operations in the same order. An operation that waits longer than
// timeout() seconds for the others stops every process with an error naming it (a process died or hangs).
class Comm {
public:
    virtual ~Comm() = default;

    // This process's rank, and how many processes the run has.
    virtual std::size_t rank() const = 0;
    virtual std::size_t size() const = 0;
    // Whether this is rank 0: the process that writes files and prints.
    bool root() const { return rank() == 0; }
    // Processes of the run on this machine (for a default number of BLAS threads).
    virtual std::size_t local_size() const { return 1; }
    // "1 process", "4 processes (MPI, 2 machines)": for the log.
    virtual std::string describe() const = 0;

    // Sums v[0, n) over the processes, in place; every process gets the same sums.
    virtual void sum(double* v, std::size_t n) = 0;
    // Rank 0's v[0, n) into every process's v.
    virtual void broadcast(float* v, std::size_t n) = 0;
    virtual void broadcast(std::uint64_t* v, std::size_t n) = 0;
    // Rank 0 receives every process's mine[0, n), in rank order, into all[0, size() * n) (unused elsewhere).
    virtual void gather(const float* mine, std::size_t n, float* all) = 0;
    // The reverse: process r receives all[r * n, (r + 1) * n) of rank 0's all into mine.
    virtual void scatter(const float* all, float* mine, std::size_t n) = 0;
    // Waits until every process has come here.
    virtual void barrier() = 0;

    // Starts summing v[0, n) over the processes, in place, without waiting. Once the sums are in v, `done` runs (on
    // the thread that does the communication); v must stay valid and untouched until then. Sums complete in the
    // order they were started.
    virtual void start_sum(float* v, std::size_t n, std::function<void()> done) = 0;
    // Waits until every started sum is done (its `done` has returned).
    virtual void wait_sums() = 0;

    // A communicator of the first n processes of this one (collective over this one; n <= size()): the others
    // get null. Tests run 1, 2 and 4 processes within one 4-process launch with it.
    virtual std::unique_ptr<Comm> first(std::size_t n) = 0;

    // Seconds an operation may wait for the other processes before the run stops (0: forever).
    double timeout() const { return timeout_; }
    void set_timeout(double seconds) { timeout_ = seconds; }

    // Stops every process of the run with this exit status (the caller has printed why); never returns.
    [[noreturn]] virtual void abort(int status) = 0;

protected:
    double timeout_ = 300.0;
};

// One process: every collective is a copy or nothing, and start_sum runs `done` at once.
class SerialComm final : public Comm {
public:
    std::size_t rank() const override { return 0; }
    std::size_t size() const override { return 1; }
    std::string describe() const override { return "1 process"; }
    void sum(double*, std::size_t) override {}
    void broadcast(float*, std::size_t) override {}
    void broadcast(std::uint64_t*, std::size_t) override {}
    void gather(const float* mine, std::size_t n, float* all) override;
    void scatter(const float* all, float* mine, std::size_t n) override;
    void barrier() override {}
    void start_sum(float*, std::size_t, std::function<void()> done) override { done(); }
    void wait_sums() override {}
    std::unique_ptr<Comm> first(std::size_t n) override;
    [[noreturn]] void abort(int status) override;
};

// The processes this program was started as: MPI's world when an MPI launcher started it with more than one
// process (mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's PMI_SIZE; XTGRAD_MPI=1 forces MPI), else one process.
// Initialises MPI, which the last Comm of the world finalises. Throws ConfigError when more than one process was
// launched but the program was built without MPI.
std::unique_ptr<Comm> make_world_comm();

// Streams [offset, offset + count) of a batch of `total`: this process's contiguous share, rank r of n getting
// [r total / n, (r + 1) total / n).
struct Share {
    std::size_t offset = 0, count = 0, total = 0;
};
Share share_of(std::size_t total, const Comm& comm);

// The columns [share.offset, share.offset + share.count) of a batchified split, a Batched of its own.
Batched take_streams(const Batched& data, const Share& share);

// Rank 0's v, in every process (a time, a decision that must be one for all).
double from_root(Comm& comm, double v);
// Rank 0's string, in every process.
std::string from_root(Comm& comm, const std::string& s);

// An error every process of a run has at once (through agree or on_root): every process stops alike, with no
// process left waiting for another; `report` says whether this process should print it (rank 0, and each process
// whose own reason differs from rank 0's), so that one message is not repeated by every process.
class SharedError : public Error {
public:
    SharedError(const std::string& what, bool config, bool report) : Error(what), config(config), report(report) {}
    bool config;  // every failure was a ConfigError (a usage error)
    bool report;
};

// Runs f in every process and agrees on the outcome: when f failed in any process, every process throws
// SharedError (its own message where it failed, else rank 0's). Every process must call it. One process: f's error
// propagates as it is.
void agree(Comm& comm, const std::function<void()>& f);
// The same with f run on rank 0 only (a file's check or write).
void on_root(Comm& comm, const std::function<void()>& f);

// A 64-bit FNV-1a hash of arrays' values (their bits), for checking that processes hold the same values.
std::uint64_t fingerprint(const std::vector<const Array*>& arrays, std::uint64_t h = 0xcbf29ce484222325ULL);
// Throws SharedError (in every process alike) when `value` is not the same in every process: "<what> differs
// between the processes of the run (k of n differ from rank 0)".
void check_same(Comm& comm, std::uint64_t value, const std::string& what);

// Every parameter's value as rank 0 holds it (initial weights, a loaded checkpoint's).
void broadcast_parameters(Comm& comm, const std::vector<Parameter*>& params);

// The whole batch's carried state on rank 0 from every process's rows (elsewhere: empty), and the reverse:
// this process's rows of rank 0's whole state, shaped like `local` (which is overwritten). Shares must be equal.
RecurrentState gather_state(Comm& comm, const RecurrentState& local);
void scatter_state(Comm& comm, const RecurrentState& whole, RecurrentState& local);



// Sums the processes' gradients while backward runs, and leaves in each the mean over the processes: with equal
// shares of the batch and mean losses, the whole batch's gradient, the same in every process. Parameters are cut
// into buckets of about bucket_bytes (a larger gradient into pieces of that size, reduced in place; smaller ones
// packed together), in reverse order of the list, the order in which backward finishes them. A bucket is started
// (Comm::start_sum) as soon as the tape reports all of its parameters final (Tape::on_param_grad_final) and every
// earlier bucket is started, so that every process starts the same sums in the same order.
class GradientSync {
public:
    // The default bucket size (measured: docs/distributed.md).
    static constexpr std::size_t kDefaultBucketBytes = 4u << 20;

    // Buckets for these parameters (every process must list the same, in the same order).
    GradientSync(Comm& comm, std::vector<Parameter*> params, std::size_t bucket_bytes = kDefaultBucketBytes);
    // Removes its hook from the tape it was attached to.
    ~GradientSync();
    GradientSync(const GradientSync&) = delete;
    GradientSync& operator=(const GradientSync&) = delete;

    // Installs ready() as the tape's on_param_grad_final hook (removed again by the destructor).
    void attach(Tape& tape);
    // A parameter's gradient is final: starts the buckets that became complete.
    void ready(Parameter& p);
    // After backward: starts the buckets still waiting (parameters this pass did not reach), waits for every sum and
    // returns the seconds spent waiting. Every gradient then holds the mean over the processes.
    double finish();

    // Buckets, and those among them that pack several parameters.
    std::size_t buckets() const { return buckets_.size(); }
    std::size_t packed_buckets() const;
    // Buckets of the last pass started before finish() (overlapped with backward).
    std::size_t started_early() const { return last_early_; }

private:
    struct Piece {
        Parameter* param;
        std::size_t begin, end;  // elements of its gradient
    };
    struct Bucket {
        std::vector<Piece> pieces;
        std::vector<float> packed;  // several pieces: reduced in this buffer; one: in place
        std::size_t size = 0;    // elements
        std::size_t params = 0;  // distinct parameters
    };
    void start(std::size_t b);

    Comm& comm_;
    std::vector<Bucket> buckets_;
    std::vector<std::vector<std::size_t>> of_param_;  // the buckets of each parameter
    std::vector<Parameter*> params_;
    std::vector<std::size_t> waiting_;  // per bucket: parameters not final yet in this pass
    std::size_t next_ = 0, early_ = 0, last_early_ = 0;
    float scale_;
    Tape* tape_ = nullptr;
};

}  // namespace xtgrad
