#include <xtgrad/apps/lm/distributed.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

#if XTGRAD_HAVE_MPI
// mpi_comm.cpp: the world of an MPI launch.
std::unique_ptr<Comm> make_mpi_world();
#endif

namespace {

// The number of processes an MPI launcher says it started (0: not started by one).
std::size_t launched_processes() {
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {  // Open MPI, MPICH (Hydra, Slurm PMI)
        if (const char* v = std::getenv(var)) return static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
    }
    return 0;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

void SerialComm::gather(const float* mine, std::size_t n, float* all) { std::copy(mine, mine + n, all); }

void SerialComm::scatter(const float* all, float* mine, std::size_t n) { std::copy(all, all + n, mine); }

std::unique_ptr<Comm> SerialComm::first(std::size_t n) {
    if (n != 1) throw ConfigError(fmt::format("Comm::first({}): the run has 1 process", n));
    return std::make_unique<SerialComm>();
}

void SerialComm::abort(int status) { std::exit(status); }

std::unique_ptr<Comm> make_world_comm() {
    const char* force = std::getenv("XTGRAD_MPI");
    const bool forced = force && std::string(force) == "1";
    const std::size_t n = launched_processes();
    if (!forced && n <= 1) return std::make_unique<SerialComm>();
#if XTGRAD_HAVE_MPI
    std::unique_ptr<Comm> world = make_mpi_world();
    if (const char* t = std::getenv("XTGRAD_COMM_TIMEOUT")) {
        char* end = nullptr;
        const double v = std::strtod(t, &end);
        if (*t == '\0' || *end != '\0' || !(v >= 0) || v > 1e9)
            throw ConfigError(fmt::format("XTGRAD_COMM_TIMEOUT='{}' is not a number of seconds (0: wait forever)", t));
        world->set_timeout(v);
    }
    return world;
#else
    throw ConfigError(fmt::format("started as one of {} processes by an MPI launcher, but this program was built "
                                  "without MPI: install libopenmpi-dev and rebuild (meson option -Dmpi=enabled)",
                                  n ? std::to_string(n) : std::string("several")));
#endif
}

Share share_of(std::size_t total, const Comm& comm) {
    const std::size_t r = comm.rank(), n = comm.size();
    const std::size_t begin = total * r / n, end = total * (r + 1) / n;
    return {begin, end - begin, total};
}

Batched take_streams(const Batched& data, const Share& share) {
    if (share.offset + share.count > data.batch || share.count == 0)
        throw ConfigError(fmt::format("take_streams: streams [{}, {}) of a batch of {}", share.offset,
                                      share.offset + share.count, data.batch));
    Batched b;
    b.steps = data.steps;
    b.batch = share.count;
    b.data.resize(b.steps * b.batch);
    for (std::size_t t = 0; t < b.steps; ++t)
        std::copy(data.data.begin() + static_cast<long>(t * data.batch + share.offset),
                  data.data.begin() + static_cast<long>(t * data.batch + share.offset + share.count),
                  b.data.begin() + static_cast<long>(t * b.batch));
    return b;
}

double from_root(Comm& comm, double v) {
    double x = comm.root() ? v : 0.0;  // a sum of rank 0's value and zeros is exact
    comm.sum(&x, 1);
    return x;
}

std::string from_root(Comm& comm, const std::string& s) {
    std::uint64_t n = s.size();
    comm.broadcast(&n, 1);
    std::vector<std::uint64_t> words((n + 7) / 8, 0);
    if (comm.root()) std::memcpy(words.data(), s.data(), n);
    comm.broadcast(words.data(), words.size());
    return std::string(reinterpret_cast<const char*>(words.data()), n);
}

void agree(Comm& comm, const std::function<void()>& f) {
    if (comm.size() == 1) {
        f();
        return;
    }
    int kind = 0;  // 0 done, 1 a usage error, 2 another
    std::string what;
    try {
        f();
    } catch (const SharedError&) {
        throw;  // agreed already, in every process
    } catch (const ConfigError& e) {
        kind = 1;
        what = e.what();
    } catch (const std::exception& e) {
        kind = 2;
        what = e.what();
    }
    double failed[2] = {kind > 0 ? 1.0 : 0.0, kind == 2 ? 1.0 : 0.0};
    comm.sum(failed, 2);
    if (failed[0] == 0) return;
    const std::string root_what = from_root(comm, what);
    const bool config = failed[1] == 0;
    if (kind) throw SharedError(what, config, comm.root() || what != root_what);
    throw SharedError(root_what.empty() ? "another process of the run failed" : root_what, config, comm.root());
}

void on_root(Comm& comm, const std::function<void()>& f) {
    agree(comm, [&] {
        if (comm.root()) f();
    });
}

void broadcast_parameters(Comm& comm, const std::vector<Parameter*>& params) {
    for (Parameter* p : params) comm.broadcast(p->value.data(), p->value.size());
}

RecurrentState gather_state(Comm& comm, const RecurrentState& local) {
    RecurrentState whole;
    if (comm.root()) whole.cells.resize(local.cells.size());
    for (std::size_t k = 0; k < local.cells.size(); ++k) {
        for (const Array& part : local.cells[k]) {
            Array all;
            if (comm.root()) all = Array({part.shape()[0] * comm.size(), part.shape()[1]});
            comm.gather(part.data(), part.size(), comm.root() ? all.data() : nullptr);
            if (comm.root()) whole.cells[k].push_back(std::move(all));
        }
    }
    return whole;
}

void scatter_state(Comm& comm, const RecurrentState& whole, RecurrentState& local) {
    for (std::size_t k = 0; k < local.cells.size(); ++k) {
        for (std::size_t p = 0; p < local.cells[k].size(); ++p) {
            Array& part = local.cells[k][p];
            if (comm.root() && whole.cells[k][p].size() != part.size() * comm.size())
                throw ShapeError(fmt::format("scatter_state: state part {} of cell {} is {}, not {} processes' {}", p, k,
                                             shape_str(whole.cells[k][p]), comm.size(), shape_str(part)));
            comm.scatter(comm.root() ? whole.cells[k][p].data() : nullptr, part.data(), part.size());
        }
    }
}

std::uint64_t fingerprint(const std::vector<const Array*>& arrays, std::uint64_t h) {
    for (const Array* a : arrays) {
        for (std::size_t k = 0; k < a->size(); ++k) {  // FNV-1a over each value's 32 bits
            std::uint32_t bits = 0;
            std::memcpy(&bits, a->data() + k, sizeof bits);
            h = (h ^ bits) * 0x100000001b3ULL;
        }
    }
    return h;
}

void check_same(Comm& comm, std::uint64_t value, const std::string& what) {
    std::uint64_t root_value = value;
    comm.broadcast(&root_value, 1);
    double differ = root_value != value ? 1.0 : 0.0;
    comm.sum(&differ, 1);
    if (differ > 0)
        throw SharedError(fmt::format("{} differs between the processes of the run ({} of {} differ from rank 0)", what,
                                static_cast<std::size_t>(differ), comm.size()),
                          false, comm.root());
}

// ---- GradientSync

GradientSync::GradientSync(Comm& comm, std::vector<Parameter*> params, std::size_t bucket_bytes)
    : comm_(comm), params_(std::move(params)), scale_(1.0f / static_cast<float>(comm.size())) {
    const std::size_t cap = std::max<std::size_t>(1, bucket_bytes / sizeof(float));
    of_param_.resize(params_.size());
    Bucket open;
    std::vector<std::size_t> open_params;
    auto close = [&] {
        if (open.pieces.empty()) return;
        const std::size_t b = buckets_.size();
        for (std::size_t i : open_params) of_param_[i].push_back(b);
        if (open.pieces.size() > 1) open.packed.resize(open.size);
        buckets_.push_back(std::move(open));
        open = Bucket{};
        open_params.clear();
    };
    for (std::size_t i = params_.size(); i-- > 0;) {  // reverse order: backward finishes the last layers first
        Parameter* p = params_[i];
        const std::size_t n = p->grad.size();
        if (n >= cap) {  // a large gradient: pieces of its own, reduced in place
            close();
            for (std::size_t at = 0; at < n; at += cap) {
                open.pieces.push_back({p, at, std::min(n, at + cap)});
                open.size = open.pieces.back().end - at;
                open_params.push_back(i);
                close();
            }
            continue;
        }
        if (open.size + n > cap) close();
        open.pieces.push_back({p, 0, n});
        open.size += n;
        open_params.push_back(i);
    }
    close();
    for (Bucket& b : buckets_) {
        std::vector<Parameter*> distinct;
        for (const Piece& pc : b.pieces)
            if (std::find(distinct.begin(), distinct.end(), pc.param) == distinct.end()) distinct.push_back(pc.param);
        b.params = distinct.size();
    }
    waiting_.resize(buckets_.size());
    for (std::size_t b = 0; b < buckets_.size(); ++b) waiting_[b] = buckets_[b].params;
}

GradientSync::~GradientSync() {
    if (tape_) tape_->on_param_grad_final(nullptr);
}

void GradientSync::attach(Tape& tape) {
    if (tape_) tape_->on_param_grad_final(nullptr);
    tape_ = &tape;
    tape.on_param_grad_final([this](Parameter& p) { ready(p); });
}

std::size_t GradientSync::packed_buckets() const {
    return static_cast<std::size_t>(std::count_if(buckets_.begin(), buckets_.end(),
                                                  [](const Bucket& b) { return !b.packed.empty(); }));
}

void GradientSync::ready(Parameter& p) {
    const auto it = std::find(params_.begin(), params_.end(), &p);
    if (it == params_.end()) return;  // not one of the synchronised parameters
    for (std::size_t b : of_param_[static_cast<std::size_t>(it - params_.begin())]) {
        if (b < next_)
            throw Error(fmt::format("GradientSync: the gradient of {} was reported final twice before finish() (one "
                                    "backward pass per update)", p.name));
        --waiting_[b];
    }
    while (next_ < buckets_.size() && waiting_[next_] == 0) {
        start(next_++);
        ++early_;
    }
}

void GradientSync::start(std::size_t b) {
    Bucket& k = buckets_[b];
    // The sum has rows the other processes reached and this one did not: a row-tracked gradient (an embedding's)
    // is dense from here, so that the optimiser updates and zero_grad clears every row of it.
    for (const Piece& pc : k.pieces) pc.param->grad_dense();
    if (k.packed.empty()) {  // one piece, reduced in place
        const Piece& pc = k.pieces[0];
        comm_.start_sum(pc.param->grad.data() + pc.begin, pc.end - pc.begin, [this, b] {
            const Piece& pc = buckets_[b].pieces[0];
            float* g = pc.param->grad.data();
            for (std::size_t j = pc.begin; j < pc.end; ++j) g[j] *= scale_;
        });
        return;
    }
    float* at = k.packed.data();
    for (const Piece& pc : k.pieces) at = std::copy(pc.param->grad.data() + pc.begin, pc.param->grad.data() + pc.end, at);
    comm_.start_sum(k.packed.data(), k.size, [this, b] {
        const Bucket& k = buckets_[b];
        const float* from = k.packed.data();
        for (const Piece& pc : k.pieces) {
            float* g = pc.param->grad.data() + pc.begin;
            for (std::size_t j = 0; j < pc.end - pc.begin; ++j) g[j] = from[j] * scale_;
            from += pc.end - pc.begin;
        }
    });
}

double GradientSync::finish() {
    while (next_ < buckets_.size()) start(next_++);
    const double t0 = now();
    comm_.wait_sums();
    const double waited = now() - t0;
    next_ = 0;
    last_early_ = early_;
    early_ = 0;
    for (std::size_t b = 0; b < buckets_.size(); ++b) waiting_[b] = buckets_[b].params;
    return waited;
}

}  // namespace xtgrad
