// The example cells of apps/examples trained next to the built-in LSTM on Tiny Shakespeare, character level: the
// same size, seed, data order, optimiser (Adam 3e-3, clip 5) and dropout for every model, one training step of
// each model in turn, so that a loaded machine slows all of them alike. Prints per model the training loss over
// the last 50 steps, the validation loss after training, tokens/s and the ratio to the built-in LSTM's tokens/s in
// the same run (by thread CPU time, and by wall time). Run by hand; nothing here is a test.
//   ./build/tests/bench/bench_cells [--data FILE_OR_DIR] [--steps N] [--emsize E] [--nhid H] [--batch B]
//                                   [--bptt T] [--only LSTM,LN_LSTM,...] [--profile]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/blas.hpp>

#include "attn_lstm.hpp"
#include "indrnn.hpp"
#include "ln_lstm.hpp"
#include "peephole_lstm.hpp"
#include "sru.hpp"

using namespace xtgrad;

namespace {

double wall_now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// One model being trained: its own weights, optimiser, tape, dropout generator and carried state.
struct Run {
    std::string name;
    std::unique_ptr<RNNLM> model;
    std::vector<Parameter*> params;
    std::unique_ptr<Adam> opt;
    Tape tape;
    Rng rng{7};
    RecurrentState hidden;
    double wall = 0.0, cpu = 0.0, block = 0.0, last50 = 0.0;  // training loss sums: since the last line, last 50 steps
    std::size_t tokens = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::string data = "../shared/data/tinyshakespeare", only;
    std::size_t steps = 300, emsize = 64, nhid = 256, batch = 32, bptt = 100;
    bool profile = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "bench_cells: {} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&]() -> std::size_t {
            const std::string v = next();
            char* end = nullptr;
            const unsigned long n = std::strtoul(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n == 0) {
                fmt::print(stderr, "bench_cells: {} needs a positive integer, got '{}'\n", a, v);
                std::exit(2);
            }
            return n;
        };
        if (a == "--data") data = next();
        else if (a == "--steps") steps = number();
        else if (a == "--emsize") emsize = number();
        else if (a == "--nhid") nhid = number();
        else if (a == "--batch") batch = number();
        else if (a == "--bptt") bptt = number();
        else if (a == "--only") only = "," + next() + ",";
        else if (a == "--profile") profile = true;
        else {
            fmt::print(stderr, "bench_cells: unknown argument {}\n", a);
            return 2;
        }
    }
    set_blas_threads(1);  // each step on one core: the ratio is not the scheduler's
    Corpus corpus;
    try {
        corpus = load_char_corpus(data);
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_cells: {}\n", e.what());
        return 1;
    }
    const Batched train = batchify(corpus.train, batch), valid = batchify(corpus.valid, batch);
    if (train.steps < bptt + 2 || valid.steps < bptt + 2) {
        fmt::print(stderr, "bench_cells: the corpus is too short for --batch {} --bptt {}\n", batch, bptt);
        return 2;
    }

    Registry models = builtin_registry();
    models.add_cell("PEEPHOLE_LSTM", cell_factory<zoo::PeepholeLSTMCell>());
    models.add_cell("LN_LSTM", cell_factory<zoo::LNLSTMCell>());
    models.add_cell("INDRNN", cell_factory<zoo::IndRNNCell>());
    models.add_cell("SRU", cell_factory<zoo::SRUCell>());
    models.add_cell("ATTN_LSTM", cell_factory<zoo::AttnLSTMCell>());
    std::vector<std::unique_ptr<Run>> runs;
    for (const char* name : {"LSTM", "PEEPHOLE_LSTM", "LN_LSTM", "INDRNN", "SRU", "ATTN_LSTM"}) {
        if (!only.empty() && only.find(std::string(",") + name + ",") == std::string::npos && std::string(name) != "LSTM")
            continue;
        LMConfig cfg;
        cfg.cell = name;
        cfg.vocab = corpus.vocab.size();
        cfg.emsize = emsize;
        cfg.nhid = nhid;
        cfg.dropout = 0.1f;
        Rng init(1111);
        auto r = std::make_unique<Run>();
        r->name = name;
        r->model = models.build(cfg, init);
        r->params = r->model->parameters();
        r->opt = std::make_unique<Adam>(r->params, 3e-3);
        r->tape.set_profiling(profile);
        runs.push_back(std::move(r));
    }
    fmt::print("Tiny Shakespeare, {} characters | emsize {}, 2 x {}, batch {}, bptt {}, dropout 0.1, Adam 3e-3, clip 5 | "
               "{} steps of each model in turn, OpenBLAS 1 thread\n",
               corpus.vocab.size(), emsize, nhid, batch, bptt, steps);

    Ids in, tg;
    for (std::size_t s = 0; s < steps; ++s) {
        const std::size_t n = get_batch(train, (s * bptt) % (train.steps - bptt - 1), bptt, in, tg);
        for (auto& r : runs) {
            const double w0 = wall_now(), c0 = cpu_now();
            r->tape.clear();
            Ctx c{r->tape, r->rng, true};
            const LMFeatures f = r->model->features(c, in, batch, r->hidden);
            Var loss = r->model->loss(c, f.y, tg);
            r->hidden.assign(f);
            r->tape.backward(loss);
            clip_grad_norm(r->params, 5.0);
            r->opt->step();
            r->opt->zero_grad();
            r->cpu += cpu_now() - c0;
            r->wall += wall_now() - w0;
            r->tokens += n * batch;
            const double l = loss.value()(0, 0);
            r->block += l;
            if (s + 50 >= steps) r->last50 += l;
        }
        if ((s + 1) % 50 == 0 || s + 1 == steps) {  // the mean training loss since the last line
            std::string line = fmt::format("step {:4}", s + 1);
            const std::size_t n = (s + 1) % 50 ? (s + 1) % 50 : 50;
            for (auto& r : runs) {
                line += fmt::format(" | {} {:.3f}", r->name, r->block / static_cast<double>(n));
                r->block = 0.0;
            }
            fmt::print("{}\n", line);
            std::fflush(stdout);
        }
    }

    // validation loss: the first 20 windows of the validation split, no dropout, from a zero state
    fmt::print("\n{:<14} {:>10} {:>10} {:>9} {:>10} {:>10} {:>8}\n", "cell", "train loss", "valid loss", "tok/s",
               "ratio cpu", "ratio wall", "params");
    const Run& ref = *runs[0];
    for (auto& r : runs) {
        double vl = 0.0;
        std::size_t windows = 0;
        RecurrentState h;
        for (std::size_t i = 0; i + bptt + 1 < valid.steps && windows < 20; i += bptt, ++windows) {
            get_batch(valid, i, bptt, in, tg);
            r->tape.clear();
            NoGrad ng(r->tape);
            Ctx c{r->tape, r->rng, false};
            const LMFeatures f = r->model->features(c, in, batch, h);
            vl += r->model->loss(c, f.y, tg).value()(0, 0);
            h.assign(f);
        }
        const double tps = static_cast<double>(r->tokens) / r->cpu;
        fmt::print("{:<14} {:>10.3f} {:>10.3f} {:>9.0f} {:>9.2f}x {:>9.2f}x {:>8}\n", r->name,
                   r->last50 / static_cast<double>(std::min<std::size_t>(50, steps)),
                   vl / windows, tps, tps / (static_cast<double>(ref.tokens) / ref.cpu), ref.wall / r->wall,
                   r->model->parameter_count());
    }
    if (profile)
        for (auto& r : runs) {
            fmt::print("\n{}: ms per step by op (forward + backward), top 20\n", r->name);
            std::vector<std::pair<double, std::string>> ops;
            for (const auto& [key, t] : r->tape.profile()) ops.emplace_back(t.forward_s + t.backward_s, key);
            std::sort(ops.rbegin(), ops.rend());
            for (std::size_t k = 0; k < std::min<std::size_t>(20, ops.size()); ++k)
                fmt::print("  {:<40} {:8.2f}\n", ops[k].second, ops[k].first / static_cast<double>(steps) * 1e3);
        }
    return 0;
}
