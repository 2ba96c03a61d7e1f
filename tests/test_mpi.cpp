// Data-parallel training equals one process. Run under mpirun with 2 or 4 processes (meson test does both, on one
// machine): within one launch the Trainer runs on 1 process, on the first 2 (Comm::first) and on all, over the same
// global batch, with every dropout on, for the LSTM and for a cell defined here; after each step the parameters
// (and the optimiser's state and the carried hidden state) must agree to 1e-5 relative, evaluation losses too, and
// a resume point saved by one number of processes continues in another. Every process checks the same numbers
// (rank 0 measures them and broadcasts them), so a failure is every process's and nothing hangs.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/safetensors.hpp>

using namespace xtgrad;

namespace {

Comm& world() {
    static std::unique_ptr<Comm> w = [] {
        std::unique_ptr<Comm> c = make_world_comm();
        c->set_timeout(120);  // a test that hangs stops instead
        return c;
    }();
    return *w;
}

// A cell of the test's own (JANET: an LSTM with a forget gate alone, both recurrent products in one) that drops
// its recurrent input at every step with the public API, as a user's cell would: the mask must follow the
// streams, not the process.
//   [f~; c~] = x W^T + b + drop(h) U^T,  f = sigmoid(f~),  h' = f * h + (1 - f) * tanh(c~)
class DroppingJanet : public Cell {
public:
    DroppingJanet(const CellSpec& s, Rng& rng)
        : W(s.name("weight_ih"), Array({2 * s.hidden, s.input})),
          U(s.name("weight_hh"), Array({2 * s.hidden, s.hidden})),
          b(s.name("bias_ih"), Array({1, 2 * s.hidden}), {2 * s.hidden}) {
        for (Parameter* p : {&W, &U, &b}) fill_uniform(p->value, rng, -0.3f, 0.3f);
    }
    std::size_t input_size() const override { return W.value.shape()[1]; }
    std::size_t hidden_size() const override { return U.value.shape()[1]; }
    Window project(Ctx& c, Var x) override { return {affine(x, c.tape.param(W), c.tape.param(b))}; }
    StepOut step(const Step& at, Var x_t, const State& s) override {
        const std::size_t H = hidden_size();
        const Var pre = x_t + matmul_t(Dropout(0.2f)(at.ctx, s[0], at.batch), at.tape().param(U));
        const Var f = sigmoid(cols(pre, 0, H));
        const Var c = tanh(cols(pre, H, 2 * H));
        return State{c + f * (s[0] - c)};  // = f h + (1 - f) c~
    }
    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&W, &U, &b}); }
    Parameter W, U, b;
};

Registry registry() {
    Registry r = builtin_registry();
    r.add_cell("JANET", cell_factory<DroppingJanet>());
    return r;
}

// A folder of rank 0's with a small corpus (a few thousand tokens of 80 word types), the same in every process.
const std::string& work_dir() {
    static const std::string dir = [] {
        std::string d;
        if (world().root()) {
            char tmpl[] = "/tmp/xtgrad-mpi-XXXXXX";
            d = ::mkdtemp(tmpl);
            Rng r(42);
            for (const auto& [split, lines] : {std::pair<const char*, int>{"train", 300}, {"valid", 60}, {"test", 60}}) {
                std::ofstream f(d + "/" + split + ".txt");
                for (int l = 0; l < lines; ++l) {
                    for (int w = 0; w < 8; ++w) f << " w" << r.below(80) * r.below(80) / 80;  // Zipf-like
                    f << " \n";
                }
            }
        }
        d = xtgrad::from_root(world(), d);
        world().barrier();
        return d;
    }();
    return dir;
}

// The two runs every check is made on: the LSTM with SGD, the test's cell with AWD-LSTM's regularisers and momentum.
TrainOptions config(const std::string& cell) {
    TrainOptions o;
    o.data = work_dir();
    o.cell = cell;
    o.emsize = o.nhid = 12;
    o.nlayers = 2;
    o.batch_size = 4;
    o.eval_batch_size = 6;  // 4 processes get 1, 2, 1, 2 streams
    o.bptt = 5;
    o.max_batches = 5;      // an epoch of 5 batches, then validation
    o.epochs = 2;
    o.dropout = 0.3f;
    o.dropoute = 0.1f;
    o.log_interval = 1000;
    o.checkpoint_interval = 0;
    o.threads = 1;
    o.quiet = true;
    if (cell == "LSTM") {
        o.weight_drop = 0.3f;  // lr 20, clip 0.25: the clipping is active
    } else {
        o.locked_dropout = true;
        o.dropouti = 0.2f;
        o.dropouth = 0.25f;
        o.variable_bptt = true;
        o.alpha = 1.0f;
        o.beta = 1.0f;
        o.momentum = 0.9;  // not Adam: its first steps move a weight by +-lr whatever its gradient's size, so the
        o.lr = 1.0;        // rounding of a near-zero gradient entry decides the update (1.5e-5 in a debug build)
        o.clip = 1.0;
    }
    return o;
}

std::string resume_of(const std::string& save) {
    return save.substr(0, save.size() - std::string(".safetensors").size()) + ".resume.safetensors";
}

// Trains on comm (null: this process alone) until `stop` batches in all: a new run, or the one of save's resume
// point when resume is set. Returns what the run measured.
TrainResult train(Comm* comm, const TrainOptions& base, const std::string& save, std::size_t stop, bool resume) {
    TrainOptions o = base;
    const std::string rp = resume_of(save);
    if (resume) {
        o = read_resume_point(rp).options;
        o.resume = rp;
        o.quiet = true;
        o.threads = 1;
    }
    o.save = save;
    o.stop_after = stop;
    std::ostringstream log;
    const Registry reg = registry();
    const TrainResult r = Trainer(o, reg, log, comm).run();
    if (comm) comm->barrier();  // rank 0 has written its files: the next run may read them
    return r;
}


// The largest relative difference over the tensors of two resume points (weights, optimiser state, hidden state):
// per tensor max |a - b| / max |a|; and the tensor it is in.
struct Difference {
    double worst = 0.0;
    std::string where;
};
Difference worst_difference(const StateDict& a, const StateDict& b) {
    Difference d;
    if (a.tensors.size() != b.tensors.size()) return {INFINITY, "(other tensors)"};
    for (const auto& [name, e] : a.tensors) {
        auto it = b.tensors.find(name);
        if (it == b.tensors.end() || it->second.value.shape() != e.value.shape()) return {INFINITY, name};
        double diff = 0.0, scale = 0.0;
        for (std::size_t k = 0; k < e.value.size(); ++k) {
            diff = std::max(diff, static_cast<double>(std::abs(e.value.data()[k] - it->second.value.data()[k])));
            scale = std::max(scale, static_cast<double>(std::abs(e.value.data()[k])));
        }
        if (scale > 0 && diff / scale > d.worst) d = {diff / scale, name};
    }
    return d;
}

// Rank 0's value in every process.
double shared(double v) { return xtgrad::from_root(world(), v); }

// The validation losses of a run's metrics file, in order.
std::vector<double> val_losses(const std::string& save) {
    std::vector<double> v;
    const std::string metrics = save.substr(0, save.size() - std::string(".safetensors").size()) + ".metrics.jsonl";
    for (const std::string& line : read_metrics_lines(metrics)) {
        const std::size_t at = line.find("\"val_loss\":");
        if (at != std::string::npos) v.push_back(std::strtod(line.c_str() + at + 11, nullptr));
    }
    return v;
}

constexpr double kTolerance = 1e-5;
constexpr std::size_t kSteps = 4;

}  // namespace

TEST_CASE("data-parallel training: parameters equal one process's after every step, LSTM and a user's cell") {
    if (world().size() < 2) {
        MESSAGE("one process: run under mpirun -np 2 or 4");
        return;
    }
    for (const auto& [cell, seed] : {std::pair<const char*, std::uint64_t>{"LSTM", 1111}, {"LSTM", 7}, {"JANET", 1111}}) {
        TrainOptions o = config(cell);
        o.seed = seed;
        const std::string dir = fmt::format("{}/{}-{}", work_dir(), cell, seed);
        std::vector<StateDict> reference;  // after each step, rank 0's one process
        if (world().root()) {
            ::mkdir(dir.c_str(), 0755);
            for (std::size_t k = 1; k <= kSteps; ++k) {
                train(nullptr, o, dir + "/one.safetensors", k, k > 1);
                reference.push_back(load_safetensors(resume_of(dir + "/one.safetensors")));
            }
        }
        world().barrier();
        for (std::size_t n : {std::size_t{2}, std::size_t{4}}) {
            if (n > world().size() || (n == 2 && world().size() == 4 && std::string(cell) == "JANET"))
                continue;  // the -np 2 launch has that one
            std::unique_ptr<Comm> comm = world().first(n);
            const std::string save = fmt::format("{}/n{}.safetensors", dir, n), straight = fmt::format("{}/s{}.safetensors", dir, n);
            std::vector<Difference> worst(kSteps + 1);
            for (std::size_t k = 1; k <= kSteps; ++k) {
                if (comm) train(comm.get(), o, save, k, k > 1);  // one step per resumed run
                if (world().root()) worst[k - 1] = worst_difference(reference[k - 1], load_safetensors(resume_of(save)));
            }
            if (comm) train(comm.get(), o, straight, kSteps, false);  // the same steps in one run
            if (world().root()) worst[kSteps] = worst_difference(reference.back(), load_safetensors(resume_of(straight)));
            for (std::size_t k = 0; k <= kSteps; ++k) {
                const double w = shared(worst[k].worst);
                if (world().root())
                    fmt::print("{} (seed {}) on {} processes, {}: worst relative difference {:.2e} ({})\n", cell, seed, n,
                               k < kSteps ? fmt::format("after step {} (resumed each step)", k + 1)
                                          : fmt::format("after {} steps in one run", kSteps), w, worst[k].where);
                CHECK(w <= kTolerance);
            }
            world().barrier();
        }
    }
}

TEST_CASE("data-parallel training: a resume point continues on another number of processes, evaluation equal") {
    if (world().size() < 2) return;
    const std::size_t W = world().size();
    for (const char* cell : {"LSTM", "JANET"}) {
        const TrainOptions o = config(cell);
        const std::string dir = work_dir() + "/resume-" + cell;
        TrainResult one;
        if (world().root()) {
            ::mkdir(dir.c_str(), 0755);
            one = train(nullptr, o, dir + "/one.safetensors", 0, false);  // two epochs of 5 batches, then the test
        }
        world().barrier();
        // 1 process, then W, then 2 (W = 4) or 1 (W = 2), then W to the end: every boundary crosses a count
        const std::string save = dir + "/chain.safetensors";
        std::unique_ptr<Comm> all = world().first(W), two = world().first(2);
        SerialComm serial;
        Comm* third = W == 4 ? two.get() : (world().root() ? &serial : nullptr);
        if (world().root()) train(&serial, o, save, 2, false);
        world().barrier();
        train(all.get(), o, save, 4, true);
        if (third) train(third, o, save, 7, true);  // the epoch's end and its validation inside
        world().barrier();
        const TrainResult chained = train(all.get(), o, save, 0, true);
        double weights = 0.0, val = 0.0;
        if (world().root()) {
            weights = worst_difference(load_safetensors(dir + "/one.safetensors"), load_safetensors(save)).worst;
            const std::vector<double> a = val_losses(dir + "/one.safetensors"), b = val_losses(save);
            val = a.size() == 2 && b.size() == 2 ? std::max(std::abs(a[0] / b[0] - 1), std::abs(a[1] / b[1] - 1)) : INFINITY;
        }
        weights = shared(weights);
        val = shared(val);
        const double test = std::abs(shared(one.test_loss) / chained.test_loss - 1);
        if (world().root())
            fmt::print("{}: 1 -> {} -> {} -> {} processes: best weights {:.2e}, validation {:.2e}, test loss {:.2e}\n",
                       cell, W, W == 4 ? 2 : 1, W, weights, val, test);
        CHECK(weights <= kTolerance);
        CHECK(val <= kTolerance);
        CHECK(test <= kTolerance);
    }
}

TEST_CASE("distributed evaluation: each process a share of the streams, the whole batch's loss in every process") {
    if (world().size() < 2) return;
    const Corpus corpus = load_corpus(work_dir(), "word");
    LMConfig cfg;
    cfg.vocab = corpus.vocab.size();
    cfg.emsize = cfg.nhid = 10;
    Rng rng(7);
    auto model = registry().build(cfg, rng);
    broadcast_parameters(world(), model->parameters());
    for (std::size_t batch : {world().size(), std::size_t{7}}) {  // even and uneven shares
        const Batched data = batchify(corpus.valid, batch);
        const double one = shared(world().root() ? evaluate(*model, data, 6) : 0.0);
        const double split = evaluate(*model, data, 6, 0, &world());
        CHECK(std::abs(split / one - 1) <= 1e-6);
        CHECK(split == shared(split));  // the same in every process
    }
}

TEST_CASE("check_same: a value that differs in one process stops every process alike") {
    if (world().size() < 2) return;
    CHECK_NOTHROW(check_same(world(), 42, "the answer"));
    const std::string want = "the answer differs between the processes of the run (1 of " +
                             std::to_string(world().size()) + " differ from rank 0)";
    CHECK_THROWS_WITH_AS(check_same(world(), world().rank() == 1 ? 43 : 42, "the answer"), want.c_str(), Error);
}
