// Language-model training and evaluation throughput against the roofline of the model's own matrix products (every
// product one batch runs, as recorded by xtgrad::gemm, timed alone in the same run with the same backends and
// precision), with a per-op time breakdown, peak memory, and (with --torch) the PyTorch reference run in the same
// session: fp32, or bf16 autocast for the bf16 configurations.
//   ./build/tests/bench/bench_lm [--data DIR] [--batches N] [--warmup N] [--repeat N] [--json FILE] [--torch]
//                                [--only NAME,NAME...] [--backend auto|openblas|onednn]
// Each configuration runs in a child process (this program re-executed) so that peak memory is its own.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/vmath.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Config {
    std::string name, model;
    std::size_t size;
    float dropout;
    bool eval;
    std::size_t batches, warmup;
    bool adaptive = false;  // adaptive softmax, cutoffs 2000, 10000, div 4
    Precision precision = Precision::fp32;
    std::string fp32_twin;  // bf16 configurations: the fp32 configuration they are compared with
};

std::vector<Config> configs(std::size_t n, std::size_t w) {
    const std::size_t n650 = std::max<std::size_t>(n / 5, 5), w650 = std::max<std::size_t>(w / 3, 2);
    return {
        {"lstm-200", "LSTM", 200, 0.2f, false, n, w},
        {"gru-200", "GRU", 200, 0.2f, false, n, w},
        {"rnn_tanh-200", "RNN_TANH", 200, 0.2f, false, n, w},
        {"lstm-650", "LSTM", 650, 0.5f, false, n650, w650},
        {"eval-lstm-200", "LSTM", 200, 0.2f, true, n, w},
        {"lstm-200-adaptive", "LSTM", 200, 0.2f, false, n, w, true},
        {"lstm-200-bf16", "LSTM", 200, 0.2f, false, n, w, false, Precision::bf16, "lstm-200"},
        {"lstm-650-bf16", "LSTM", 650, 0.5f, false, n650, w650, false, Precision::bf16, "lstm-650"},
        {"lstm-200-adaptive-bf16", "LSTM", 200, 0.2f, false, n, w, true, Precision::bf16, "lstm-200-adaptive"},
    };
}

// Operand buffers for replaying recorded products alone: one set per distinct shape and precision.
class Replay {
public:
    // Makes the buffers the calls need (before timing: allocating is not part of what is timed).
    void prepare(const std::vector<GemmCall>& calls) {
        for (const GemmCall& g : calls) {
            Operands& o = ops_[key(g)];
            if (o.C.size()) continue;
            const std::size_t ar = g.transA ? g.k : g.m, ac = g.transA ? g.m : g.k;
            const std::size_t br = g.transB ? g.n : g.k, bc = g.transB ? g.k : g.n;
            o.A = Array({ar, ac});
            o.B = Array({br, bc});
            o.C = Array({g.m, g.n}, 0.0f);
            fill_uniform(o.A, rng_, -1, 1);
            fill_uniform(o.B, rng_, -1, 1);
            o.A16.resize(o.A.size());
            o.B16.resize(o.B.size());
            vmath::to_bf16(o.A.data(), o.A16.data(), o.A.size());
            vmath::to_bf16(o.B.data(), o.B16.data(), o.B.size());
        }
    }
    // Runs the calls again, in order, on the prepared buffers; returns the seconds they took.
    double run(const std::vector<GemmCall>& calls) {
        const double t0 = now();
        for (const GemmCall& g : calls) {
            Operands& o = ops_.at(key(g));
            const std::size_t ac = o.A.shape()[1], bc = o.B.shape()[1];
            if (g.precision == Precision::bf16)
                gemm("roofline", ConstMat16{o.A16.data(), o.A.shape()[0], ac, ac}, g.transA,
                     ConstMat16{o.B16.data(), o.B.shape()[0], bc, bc}, g.transB, mat(o.C), 1.0f, g.beta);
            else
                gemm("roofline", cmat(o.A), g.transA, cmat(o.B), g.transB, mat(o.C), 1.0f, g.beta);
        }
        return now() - t0;
    }
    static double flop(const std::vector<GemmCall>& calls) {
        double f = 0.0;
        for (const GemmCall& g : calls) f += 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
        return f;
    }

private:
    using Key = std::tuple<std::size_t, std::size_t, std::size_t, bool, bool, Precision>;
    static Key key(const GemmCall& g) { return {g.m, g.n, g.k, g.transA, g.transB, g.precision}; }
    struct Operands {
        Array A, B, C;
        std::vector<bf16> A16, B16;
    };
    std::map<Key, Operands> ops_;
    Rng rng_{1};
};

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::string category(const std::string& key, std::size_t V, std::size_t B) {
    const std::string op = key.substr(0, key.find(' '));
    const bool decoder = key.find(fmt::format("x {})", V)) != std::string::npos;
    if (op == "affine" || op == "matmul" || op == "matmul_t") {
        if (decoder) return "decoder GEMM";
        if (key.find(fmt::format(" x {})", V)) == std::string::npos && op == "matmul_t") return "adaptive softmax GEMMs";
        if (key.find(fmt::format("({} x", B)) != std::string::npos) return "recurrent GEMMs";
        return "input projection GEMMs";
    }
    if (op == "cross_entropy" || op == "log_softmax") return "softmax + cross-entropy";
    if (op == "gather") return "embedding";
    if (op == "param" || op == "constant") return "leaves";
    if (op == "(deferred") return "recurrent GEMMs";  // the stacked weight gradients of the recurrent steps
    if (op == "dropout") return "dropout";
    return "elementwise gates";
}

long peak_rss_kb() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// Runs one configuration in this process; prints one JSON line. Phase 1 times warm-up + timed batches (tokens/s,
// the per-op profile, peak memory); phase 2 alternates a batch and its own products replayed alone (recorded by
// xtgrad::gemm), so that the roofline fraction compares two timings taken back to back (the machine is shared).
int run_child(const Config& c, const std::string& data) {
    const Corpus corpus = load_word_corpus(data);
    const std::size_t B = c.eval ? 10 : 20, T = 35;
    const Batched batched = batchify(c.eval ? corpus.valid : corpus.train, B);
    LMConfig cfg;
    cfg.cell = c.model;
    cfg.vocab = corpus.vocab.size();
    cfg.emsize = cfg.nhid = c.size;
    cfg.dropout = c.dropout;
    if (c.adaptive) {
        cfg.cutoffs = {2000, 10000};
        cfg.order = frequency_order(corpus.train, cfg.vocab);
    }
    Rng rng(1111);
    RNNLM model(cfg, builtin_cell(parse_cell_type(c.model)), rng);
    std::vector<Parameter*> params = model.parameters();
    SGD opt(params, 20.0);
    Tape tape;
    tape.set_precision(c.precision);
    RecurrentState hidden;
    Ids in, tg;
    double t_opt = 0.0, t_clip = 0.0;
    const auto batch = [&](std::size_t b) {  // one training (or evaluation) batch; returns its tokens
        const std::size_t n = get_batch(batched, (b * T) % (batched.steps - T - 1), T, in, tg);
        tape.clear();
        if (c.eval) {
            NoGrad ng(tape);
            Ctx ctx{tape, rng, false};
            const RecurrentOutput f = model.features(ctx, in, B, hidden);
            model.loss(ctx, f.y, tg);
            hidden.assign(f);
        } else {
            Ctx ctx{tape, rng, true};
            const RecurrentOutput f = model.features(ctx, in, B, hidden);
            Var loss = model.loss(ctx, f.y, tg);
            hidden.assign(f);
            tape.backward(loss);
            const double a = now();
            clip_grad_norm(params, 0.25);
            const double m = now();
            opt.step_and_zero_grad();
            t_clip += m - a;
            t_opt += now() - m;
        }
        return n * B;
    };
    for (std::size_t b = 0; b < c.warmup; ++b) batch(b);
    t_opt = t_clip = 0.0;
    tape.set_profiling(true);
    std::size_t tokens = 0;
    const double t_start = now();
    for (std::size_t b = c.warmup; b < c.warmup + c.batches; ++b) tokens += batch(b);
    tape.clear();
    const double elapsed = now() - t_start;
    tape.set_profiling(false);
    const double peak_mb = static_cast<double>(peak_rss_kb()) / 1024.0;  // before the replay buffers

    Replay replay;
    std::vector<GemmCall> calls;
    calls.reserve(1 << 14);
    std::vector<double> ratios, product_s, flops;
    const std::size_t rounds = std::min<std::size_t>(c.batches, 10);
    for (std::size_t r = 0; r < rounds; ++r) {
        calls.clear();
        record_gemm_calls(&calls);
        const double t0 = now();
        batch(c.warmup + c.batches + r);
        const double tb = now() - t0;
        record_gemm_calls(nullptr);
        replay.prepare(calls);
        const double tp = replay.run(calls);
        ratios.push_back(tp / tb);
        product_s.push_back(tp);
        flops.push_back(Replay::flop(calls));
    }
    const double per_batch = elapsed / static_cast<double>(c.batches), gemm_s = median(product_s),
                 gemm_flop = median(flops);
    std::map<std::string, double> cats;
    double profiled = 0.0;
    for (const auto& [key, t] : tape.profile()) {
        cats[category(key, cfg.vocab, B)] += t.forward_s + t.backward_s;
        profiled += t.forward_s + t.backward_s;
    }
    cats["clip (grad norm)"] = t_clip;
    cats["optimizer step + zero_grad"] = t_opt;
    cats["tape and loop overhead"] = std::max(0.0, elapsed - profiled - t_clip - t_opt);
    std::string breakdown;
    for (const auto& [k, v] : cats)
        breakdown += fmt::format("{}\"{}\":{:.4f}", breakdown.empty() ? "" : ",", k, v / static_cast<double>(c.batches) * 1e3);
    fmt::print(R"({{"name":"{}","tokens_per_s":{:.1f},"ms_per_batch":{:.2f},"gflops":{:.1f},"sgemm_gflops":{:.1f},)"
               R"("sgemm_ms_per_batch":{:.2f},"fraction_of_sgemm":{:.3f},"peak_rss_mb":{:.1f},"breakdown_ms":{{{}}}}})"
               "\n",
               c.name, static_cast<double>(tokens) / elapsed, per_batch * 1e3, gemm_flop / per_batch * 1e-9,
               gemm_s > 0 ? gemm_flop / gemm_s * 1e-9 : 0.0, gemm_s * 1e3, median(ratios), peak_mb, breakdown);
    return 0;
}

struct ChildResult {
    std::string out;
    long peak_kb;
    int rc;
};

ChildResult spawn(const std::vector<std::string>& argv) {
    int fds[2];
    if (pipe(fds) != 0) return {"", 0, -1};
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        std::vector<char*> a;
        for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
        a.push_back(nullptr);
        execv(a[0], a.data());
        _exit(127);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t k;
    while ((k = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(k));
    close(fds[0]);
    int status = 0;
    struct rusage ru {};
    wait4(pid, &status, 0, &ru);
    return {out, ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

double json_num(const std::string& s, const std::string& key) {
    const std::size_t p = s.find("\"" + key + "\":");
    return p == std::string::npos ? 0.0 : std::atof(s.c_str() + p + key.size() + 3);
}

// tok/s of the PyTorch reference (torch_lm.py under torch_env.sh) for a configuration, with its peak memory.
std::pair<double, double> torch_run(const Config& c, const std::string& data, const std::string& bench) {
    std::vector<std::string> argv = {"/bin/sh", bench + "/torch_env.sh", "/usr/bin/python3", bench + "/torch_lm.py",
                                     "--data", data, "--threads", "2", "--model", c.model, "--emsize",
                                     std::to_string(c.size), "--nhid", std::to_string(c.size), "--dropout",
                                     fmt::format("{}", c.dropout), "--epochs", "1"};
    if (c.precision == Precision::bf16) argv.push_back("--bf16");
    if (c.eval) {
        argv.insert(argv.end(), {"--eval_only", "--eval_max_batches", std::to_string(c.warmup + c.batches)});
    } else {
        argv.insert(argv.end(), {"--max_batches", std::to_string(c.warmup + c.batches), "--warmup",
                                 std::to_string(c.warmup), "--log_interval", "100000", "--no_eval", "--no_test"});
    }
    const ChildResult r = spawn(argv);
    double tps = 0.0;
    const std::string key = c.eval ? "eval tok/s " : "tok/s ";
    const std::size_t p = c.eval ? r.out.find("eval tok/s ") : r.out.rfind("tok/s ");
    if (r.rc == 0 && p != std::string::npos) tps = std::atof(r.out.c_str() + p + key.size());
    if (tps <= 0.0) {  // say why, rather than print a speed of 0 (torch not installed, a bad flag, ...)
        const std::size_t from = r.out.size() > 600 ? r.out.size() - 600 : 0;
        fmt::print(stderr, "bench_lm: the PyTorch reference gave no tok/s (exit status {}); its last output:\n{}\n",
                   r.rc, r.out.substr(from));
    }
    return {tps, static_cast<double>(r.peak_kb) / 1024.0};
}

GemmBackend parse_backend(const std::string& b) {
    if (b == "openblas") return GemmBackend::openblas;
    if (b == "onednn") return GemmBackend::onednn;
    return GemmBackend::automatic;
}

// What one repetition measured for a configuration.
struct Measured {
    std::string json;
    double tps = 0.0, fraction = 0.0, torch_tps = 0.0, torch_peak = 0.0;
};

void print_breakdown(const std::string& line) {
    const std::size_t bp = line.find("\"breakdown_ms\":{");
    if (bp == std::string::npos) return;
    const std::string bd = line.substr(bp + 16, line.rfind('}') - bp - 17);
    for (std::size_t s = 0; s < bd.size();) {
        const std::size_t e = bd.find(',', s);
        const std::string item = bd.substr(s, e == std::string::npos ? std::string::npos : e - s);
        const std::size_t colon = item.rfind(':');
        fmt::print("    {:<30} {:>8.2f} ms/batch\n", item.substr(1, colon - 2), std::atof(item.c_str() + colon + 1));
        if (e == std::string::npos) break;
        s = e + 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    prefer_passive_openmp(argc, argv);  // the children inherit it
    std::string data = "../shared/data/wikitext-2", json, only, bench = "../shared/bench", child, backend = "auto";
    std::size_t batches = 50, warmup = 10, repeat = 1;
    bool torch = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--data") data = next();
        else if (a == "--json") json = next();
        else if (a == "--only") only = "," + next() + ",";
        else if (a == "--batches") batches = std::stoul(next());
        else if (a == "--warmup") warmup = std::stoul(next());
        else if (a == "--repeat") repeat = std::max<std::size_t>(1, std::stoul(next()));
        else if (a == "--torch") torch = true;
        else if (a == "--bench") bench = next();
        else if (a == "--child") child = next();
        else if (a == "--backend") backend = next();
        else {
            fmt::print(stderr, "bench_lm: unknown argument {}\n", a);
            return 2;
        }
    }
    if (backend != "auto" && backend != "openblas" && backend != "onednn") {
        fmt::print(stderr, "bench_lm: --backend must be auto, openblas or onednn, got {}\n", backend);
        return 2;
    }
    set_gemm_backend(parse_backend(backend));
    const std::vector<Config> all = configs(batches, warmup);
    if (!child.empty()) {
        for (const Config& c : all)
            if (c.name == child) return run_child(c, data);
        return 2;
    }
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    fmt::print("{} | backend {} | data {} | {} timed batches after {} warm-up (medium LSTM: {} after {}) | {} "
               "repetition(s)\n",
               gemm_backend_info(), backend, data, batches, warmup, all[3].batches, all[3].warmup, repeat);
    std::vector<const Config*> chosen;
    for (const Config& c : all)
        if (only.empty() || only.find("," + c.name + ",") != std::string::npos) chosen.push_back(&c);
    // Repetitions outermost: each measures every configuration (and PyTorch right after it) once, so that ratios
    // between configurations come from neighbouring measurements; the summary gives medians over repetitions.
    std::map<std::string, std::vector<Measured>> runs;
    for (std::size_t rep = 0; rep < repeat; ++rep) {
        for (const Config* cp : chosen) {
            const Config& c = *cp;
            const ChildResult r = spawn({self, "--child", c.name, "--data", data, "--batches", std::to_string(batches),
                                         "--warmup", std::to_string(warmup), "--backend", backend});
            if (r.rc != 0) {
                fmt::print("{}: failed (exit {})\n", c.name, r.rc);
                continue;
            }
            Measured m;
            m.json = r.out.substr(0, r.out.find('\n'));
            m.tps = json_num(m.json, "tokens_per_s");
            m.fraction = json_num(m.json, "fraction_of_sgemm");
            fmt::print("\n[{}] {:<22} {:>7.0f} tok/s | {:>7.1f} ms/batch | {:.0f}% of the roofline (products alone: "
                       "{:.1f} GFLOP/s, {:.1f} ms/batch) | peak {:.0f} MB\n",
                       rep + 1, c.name, m.tps, json_num(m.json, "ms_per_batch"), 100 * m.fraction,
                       json_num(m.json, "sgemm_gflops"), json_num(m.json, "sgemm_ms_per_batch"),
                       json_num(m.json, "peak_rss_mb"));
            print_breakdown(m.json);
            if (torch && !c.adaptive) {
                std::tie(m.torch_tps, m.torch_peak) = torch_run(c, data, bench);
                const char* mode = c.precision == Precision::bf16 ? "bf16 autocast" : "fp32";
                if (m.torch_tps > 0)
                    fmt::print("    PyTorch ({}) {:.0f} tok/s, peak {:.0f} MB | xtgrad/PyTorch {:.2f}x\n", mode,
                               m.torch_tps, m.torch_peak, m.tps / m.torch_tps);
                else
                    fmt::print("    PyTorch ({}): no result (why: above)\n", mode);
                m.json.insert(m.json.size() - 1, fmt::format(R"(,"torch_tokens_per_s":{:.1f},"torch_peak_rss_mb":{:.1f})",
                                                             m.torch_tps, m.torch_peak));
            }
            runs[c.name].push_back(m);
        }
    }
    fmt::print("\n{:<23} {:>8} {:>9} {:>9} {:>10} {:>8}  {}\n", "configuration", "tok/s", "roofline", "PyTorch",
               "xtgrad/PT", "peak MB", "other ratios (medians of per-repetition ratios)");
    std::string results = "[";
    for (const Config* cp : chosen) {
        const Config& c = *cp;
        const std::vector<Measured>& ms = runs[c.name];
        if (ms.empty()) continue;
        std::vector<double> tps, frac, ttps, vs_torch, vs_twin, vs_torch32, vs_full;
        const auto twin = runs.find(c.fp32_twin);
        const auto full = runs.find("lstm-200");
        for (std::size_t k = 0; k < ms.size(); ++k) {
            const Measured& m = ms[k];
            tps.push_back(m.tps);
            frac.push_back(m.fraction);
            if (m.torch_tps > 0) ttps.push_back(m.torch_tps), vs_torch.push_back(m.tps / m.torch_tps);
            if (twin != runs.end() && k < twin->second.size()) {
                vs_twin.push_back(m.tps / twin->second[k].tps);
                if (twin->second[k].torch_tps > 0) vs_torch32.push_back(m.tps / twin->second[k].torch_tps);
            }
            if (c.adaptive && full != runs.end() && k < full->second.size()) vs_full.push_back(m.tps / full->second[k].tps);
        }
        std::string other;
        if (!vs_twin.empty()) other += fmt::format("{:.2f}x xtgrad fp32", median(vs_twin));
        if (!vs_torch32.empty()) other += fmt::format(", {:.2f}x PyTorch fp32", median(vs_torch32));
        if (!vs_full.empty()) other += fmt::format("{}{:.2f}x the full softmax", other.empty() ? "" : ", ", median(vs_full));
        fmt::print("{:<23} {:>8.0f} {:>8.0f}% {:>9} {:>10} {:>8.0f}  {}\n", c.name, median(tps), 100 * median(frac),
                   ttps.empty() ? "-" : fmt::format("{:.0f}", median(ttps)),
                   vs_torch.empty() ? "-" : fmt::format("{:.2f}x", median(vs_torch)),
                   json_num(ms.back().json, "peak_rss_mb"), other);
        for (const Measured& m : ms) results += (results.size() > 1 ? ",\n" : "\n") + m.json;
    }
    results += "\n]\n";
    if (!json.empty()) {
        FILE* f = std::fopen(json.c_str(), "w");
        if (!f) return 1;
        std::fputs(results.c_str(), f);
        std::fclose(f);
        fmt::print("\nresults written to {}\n", json);
    }
    return 0;
}
