// Language-model training and evaluation throughput against the roofline of the model's own matrix products (every
// product one batch runs, as recorded by xtgrad::gemm, timed alone in the same run with the same backends and
// precision), with a per-op time breakdown, peak memory, and (with --torch) the PyTorch reference run in the same
// session: fp32, or bf16 autocast for the bf16 configurations.
//   ./build/tests/bench/bench_lm [--data DIR] [--batches N] [--warmup N] [--json FILE] [--torch] [--only NAME]
//                                [--backend auto|openblas|onednn]
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
    };
}

// Seconds per batch that the recorded products take alone (each distinct shape timed on its own, median of reps
// rounds, through xtgrad::gemm with the precision it ran in), and their FLOP per batch.
std::pair<double, double> time_products(const std::vector<GemmCall>& calls, std::size_t batches, int reps) {
    std::map<std::tuple<std::size_t, std::size_t, std::size_t, bool, bool, Precision, float>, std::size_t> count;
    for (const GemmCall& g : calls) ++count[{g.m, g.n, g.k, g.transA, g.transB, g.precision, g.beta}];
    double total = 0.0, flop = 0.0;
    Rng rng(1);
    for (const auto& [key, c] : count) {
        const auto [M, N, K, ta, tb, prec, beta] = key;
        const std::size_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
        Array A({ar, ac}), B({br, bc}), C({M, N}, 0.0f);
        fill_uniform(A, rng, -1, 1);
        fill_uniform(B, rng, -1, 1);
        std::vector<bf16> A16(A.size()), B16(B.size());
        vmath::to_bf16(A.data(), A16.data(), A.size());
        vmath::to_bf16(B.data(), B16.data(), B.size());
        const std::size_t per = std::min<std::size_t>(c, 35);
        std::vector<double> ts;
        for (int r = 0; r < reps + 2; ++r) {
            const double t0 = now();
            for (std::size_t i = 0; i < per; ++i) {
                if (prec == Precision::bf16)
                    gemm("roofline", ConstMat16{A16.data(), ar, ac, ac}, ta, ConstMat16{B16.data(), br, bc, bc}, tb,
                         mat(C), 1.0f, beta);
                else
                    gemm("roofline", cmat(A), ta, cmat(B), tb, mat(C), 1.0f, beta);
            }
            if (r >= 2) ts.push_back((now() - t0) / static_cast<double>(per));
        }
        std::sort(ts.begin(), ts.end());
        total += ts[ts.size() / 2] * static_cast<double>(c);
        flop += 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) * static_cast<double>(c);
    }
    return {total / static_cast<double>(batches), flop / static_cast<double>(batches)};
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

// Runs one configuration in this process; prints one JSON line.
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
    std::vector<GemmCall> calls;
    RecurrentState hidden;
    Ids in, tg;
    double t_start = 0.0, t_opt = 0.0, t_clip = 0.0;
    std::size_t tokens = 0;
    const std::size_t total = c.warmup + c.batches;
    for (std::size_t b = 0; b < total; ++b) {
        if (b == c.warmup) {
            t_start = now();
            t_opt = t_clip = 0.0;
            tape.reset_profile();
            tape.set_profiling(true);
            record_gemm_calls(&calls);
        }
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
            opt.step();
            opt.zero_grad();
            t_clip += m - a;
            t_opt += now() - m;
        }
        if (b >= c.warmup) tokens += n * B;
    }
    tape.clear();
    const double elapsed = now() - t_start;
    tape.set_profiling(false);
    record_gemm_calls(nullptr);

    const auto [gemm_s, gemm_flop] = time_products(calls, c.batches, 3);
    const double per_batch = elapsed / static_cast<double>(c.batches);
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
    fmt::print(R"({{"name":"{}","tokens_per_s":{:.1f},"ms_per_batch":{:.2f},"gflops":{:.1f},"sgemm_gflops":{:.1f},"sgemm_ms_per_batch":{:.2f},"fraction_of_sgemm":{:.3f},"peak_rss_mb":{:.1f},"breakdown_ms":{{{}}}}})"
               "\n",
               c.name, static_cast<double>(tokens) / elapsed, per_batch * 1e3, gemm_flop / per_batch * 1e-9,
               gemm_s > 0 ? gemm_flop / gemm_s * 1e-9 : 0.0, gemm_s * 1e3, gemm_s / per_batch, static_cast<double>(peak_rss_kb()) / 1024.0,
               breakdown);
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
    return {tps, static_cast<double>(r.peak_kb) / 1024.0};
}

GemmBackend parse_backend(const std::string& b) {
    if (b == "openblas") return GemmBackend::openblas;
    if (b == "onednn") return GemmBackend::onednn;
    return GemmBackend::automatic;
}

}  // namespace

int main(int argc, char** argv) {
    std::string data = "../shared/data/wikitext-2", json, only, bench = "../shared/bench", child, backend = "auto";
    std::size_t batches = 50, warmup = 10;
    bool torch = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--data") data = next();
        else if (a == "--json") json = next();
        else if (a == "--only") only = "," + next() + ",";
        else if (a == "--batches") batches = std::stoul(next());
        else if (a == "--warmup") warmup = std::stoul(next());
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
    fmt::print("{} | backend {} | data {} | {} timed batches after {} warm-up (medium LSTM: {} after {})\n",
               gemm_backend_info(), backend, data, batches, warmup, all[3].batches, all[3].warmup);
    std::string results = "[";
    std::map<std::string, std::pair<double, double>> seen;  // name -> xtgrad tok/s, PyTorch tok/s
    for (const Config& c : all) {
        if (!only.empty() && only.find("," + c.name + ",") == std::string::npos) continue;
        const ChildResult r = spawn({self, "--child", c.name, "--data", data, "--batches", std::to_string(batches),
                                     "--warmup", std::to_string(warmup), "--backend", backend});
        if (r.rc != 0) {
            fmt::print("{}: failed (exit {})\n", c.name, r.rc);
            continue;
        }
        std::string line = r.out.substr(0, r.out.find('\n'));
        const double ours = json_num(line, "tokens_per_s");
        fmt::print("\n{:<17} {:>7.0f} tok/s | {:>7.1f} ms/batch | {:>6.1f} GFLOP/s = {:.0f}% of the roofline (products "
                   "alone: {:.1f} GFLOP/s, {:.1f} ms/batch) | peak {:.0f} MB\n",
                   c.name, ours, json_num(line, "ms_per_batch"), json_num(line, "gflops"),
                   100 * json_num(line, "fraction_of_sgemm"), json_num(line, "sgemm_gflops"),
                   json_num(line, "sgemm_ms_per_batch"), json_num(line, "peak_rss_mb"));
        if (c.adaptive && seen.count("lstm-200"))
            fmt::print("    {:.2f}x the full softmax\n", ours / seen["lstm-200"].first);
        const std::size_t bp = line.find("\"breakdown_ms\":{");
        std::string bd = line.substr(bp + 16, line.rfind('}') - bp - 17);
        for (std::size_t s = 0; s < bd.size();) {
            const std::size_t e = bd.find(',', s);
            const std::string item = bd.substr(s, e == std::string::npos ? std::string::npos : e - s);
            const std::size_t colon = item.rfind(':');
            fmt::print("    {:<30} {:>8.2f} ms/batch\n", item.substr(1, colon - 2), std::atof(item.c_str() + colon + 1));
            if (e == std::string::npos) break;
            s = e + 1;
        }
        double tps = 0.0;
        if (torch && !c.adaptive) {
            double peak = 0.0;
            std::tie(tps, peak) = torch_run(c, data, bench);
            fmt::print("    PyTorch ({}) {:.0f} tok/s, peak {:.0f} MB | xtgrad/PyTorch speed {:.2f}x, memory {:.2f}x\n",
                       c.precision == Precision::bf16 ? "bf16 autocast" : "fp32, tuned", tps, peak,
                       tps > 0 ? ours / tps : 0.0, peak > 0 ? json_num(line, "peak_rss_mb") / peak : 0.0);
            line.insert(line.size() - 1, fmt::format(R"(,"torch_tokens_per_s":{:.1f},"torch_peak_rss_mb":{:.1f})", tps, peak));
        }
        if (!c.fp32_twin.empty() && seen.count(c.fp32_twin)) {
            const auto [fp32_ours, fp32_torch] = seen[c.fp32_twin];
            fmt::print("    bf16: {:.2f}x xtgrad fp32 ({})", ours / fp32_ours, c.fp32_twin);
            if (fp32_torch > 0) fmt::print(", {:.2f}x PyTorch fp32", ours / fp32_torch);
            if (tps > 0) fmt::print(", {:.2f}x PyTorch bf16 autocast (PyTorch's own bf16 speed-up {:.2f}x)", ours / tps,
                                    fp32_torch > 0 ? tps / fp32_torch : 0.0);
            fmt::print("\n");
        }
        seen[c.name] = {ours, tps};
        results += (results.size() > 1 ? ",\n" : "\n") + line;
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
