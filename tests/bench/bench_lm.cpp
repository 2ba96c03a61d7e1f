// Language-model training and evaluation throughput against the sgemm roofline measured in the same run, with a
// per-op time breakdown, peak memory, and (with --torch) the PyTorch reference run in the same session.
//   ./build/tests/bench/bench_lm [--data DIR] [--batches N] [--warmup N] [--json FILE] [--torch] [--only NAME]
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
#include <vector>

#include <cblas.h>
#include <fmt/core.h>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/blas.hpp>
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
};

std::vector<Config> configs(std::size_t n, std::size_t w) {
    return {
        {"lstm-200", "LSTM", 200, 0.2f, false, n, w},
        {"gru-200", "GRU", 200, 0.2f, false, n, w},
        {"rnn_tanh-200", "RNN_TANH", 200, 0.2f, false, n, w},
        {"lstm-650", "LSTM", 650, 0.5f, false, std::max<std::size_t>(n / 5, 5), std::max<std::size_t>(w / 3, 2)},
        {"eval-lstm-200", "LSTM", 200, 0.2f, true, n, w},
        {"lstm-200-adaptive", "LSTM", 200, 0.2f, false, n, w, true},
    };
}

// The matrix products one batch of training (or evaluation) performs: {M, N, K, transA, transB}.
struct Gemm {
    int M, N, K;
    bool ta, tb;
};

std::vector<Gemm> model_gemms(const std::string& model, int H, int E, int V, int T, int B, int layers, bool eval) {
    const int G = model == "LSTM" ? 4 : model == "GRU" ? 3 : 1, n = T * B;
    std::vector<Gemm> g;
    for (int l = 0; l < layers; ++l) {
        const int in = l == 0 ? E : H;
        g.push_back({n, G * H, in, false, true});  // input projection x W_ih^T
        for (int t = 0; t < T; ++t) g.push_back({B, G * H, H, false, true});  // h W_hh^T
        if (!eval) {
            g.push_back({n, in, G * H, false, false});  // dx = g W_ih
            g.push_back({G * H, in, n, true, false});   // dW_ih = g^T x
            for (int t = 0; t < T; ++t) {
                g.push_back({B, H, G * H, false, false});  // dh = g W_hh
                g.push_back({G * H, H, B, true, false});   // dW_hh = g^T h
            }
        }
    }
    g.push_back({n, V, H, false, true});  // decoder
    if (!eval) {
        g.push_back({n, H, V, false, false});  // dx = g W
        g.push_back({V, H, n, true, false});   // dW = g^T x
    }
    return g;
}

// Seconds per batch that sgemm alone takes for these products (median of reps), and their FLOP.
std::pair<double, double> time_gemms(const std::vector<Gemm>& gs, int reps) {
    std::map<std::tuple<int, int, int, bool, bool>, int> count;
    for (const Gemm& g : gs) ++count[{g.M, g.N, g.K, g.ta, g.tb}];
    double total = 0.0, flop = 0.0;
    Rng rng(1);
    for (const auto& [k, c] : count) {
        const auto [M, N, K, ta, tb] = k;
        std::vector<float> A(static_cast<std::size_t>(M) * K), Bm(static_cast<std::size_t>(K) * N),
            C(static_cast<std::size_t>(M) * N);
        for (float& v : A) v = rng.uniform(-1, 1);
        for (float& v : Bm) v = rng.uniform(-1, 1);
        std::vector<double> ts;
        for (int r = 0; r < reps + 2; ++r) {
            const double t0 = now();
            for (int i = 0; i < std::min(c, 35); ++i)
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                            A.data(), ta ? M : K, Bm.data(), tb ? K : N, 1.0f, C.data(), N);
            if (r >= 2) ts.push_back((now() - t0) / std::min(c, 35));
        }
        std::sort(ts.begin(), ts.end());
        total += ts[ts.size() / 2] * c;
        flop += 2.0 * M * N * K * c;
    }
    return {total, flop};
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

    // the roofline counts the full-softmax decoder; for the adaptive softmax it is not computed
    const auto [gemm_s, gemm_flop] = c.adaptive ? std::pair<double, double>{0.0, 0.0} :
        time_gemms(model_gemms(c.model, static_cast<int>(c.size), static_cast<int>(c.size), static_cast<int>(cfg.vocab),
                               static_cast<int>(T), static_cast<int>(B), 2, c.eval),
                   3);
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

}  // namespace

int main(int argc, char** argv) {
    std::string data = "../shared/data/wikitext-2", json, only, bench = "../shared/bench", child;
    std::size_t batches = 50, warmup = 10;
    bool torch = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--data") data = next();
        else if (a == "--json") json = next();
        else if (a == "--only") only = next();
        else if (a == "--batches") batches = std::stoul(next());
        else if (a == "--warmup") warmup = std::stoul(next());
        else if (a == "--torch") torch = true;
        else if (a == "--bench") bench = next();
        else if (a == "--child") child = next();
        else {
            fmt::print(stderr, "bench_lm: unknown argument {}\n", a);
            return 2;
        }
    }
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
    fmt::print("OpenBLAS threads {} | data {} | {} timed batches after {} warm-up (medium LSTM: {} after {})\n",
               blas_threads(), data, batches, warmup, all[3].batches, all[3].warmup);
    std::string results = "[";
    double full_softmax_tps = 0.0;
    for (const Config& c : all) {
        if (!only.empty() && c.name != only) continue;
        const ChildResult r = spawn({self, "--child", c.name, "--data", data, "--batches", std::to_string(batches),
                                     "--warmup", std::to_string(warmup)});
        if (r.rc != 0) {
            fmt::print("{}: failed (exit {})\n", c.name, r.rc);
            continue;
        }
        std::string line = r.out.substr(0, r.out.find('\n'));
        if (c.adaptive)
            fmt::print("\n{:<14} {:>9.0f} tok/s | {:>7.1f} ms/batch | peak {:.0f} MB | {:.2f}x the full softmax\n", c.name,
                       json_num(line, "tokens_per_s"), json_num(line, "ms_per_batch"), json_num(line, "peak_rss_mb"),
                       full_softmax_tps > 0 ? json_num(line, "tokens_per_s") / full_softmax_tps : 0.0);
        else
            fmt::print("\n{:<14} {:>9.0f} tok/s | {:>7.1f} ms/batch | {:>6.1f} GFLOP/s = {:.0f}% of sgemm ({:.1f} GFLOP/s, "
                       "{:.1f} ms/batch) | peak {:.0f} MB\n",
                       c.name, json_num(line, "tokens_per_s"), json_num(line, "ms_per_batch"), json_num(line, "gflops"),
                       100 * json_num(line, "fraction_of_sgemm"), json_num(line, "sgemm_gflops"),
                       json_num(line, "sgemm_ms_per_batch"), json_num(line, "peak_rss_mb"));
        if (c.name == "lstm-200") full_softmax_tps = json_num(line, "tokens_per_s");
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
        if (torch && !c.adaptive) {
            const auto [tps, peak] = torch_run(c, data, bench);
            const double ours = json_num(line, "tokens_per_s");
            fmt::print("    PyTorch (tuned) {:.0f} tok/s, peak {:.0f} MB | xtgrad/PyTorch speed {:.2f}x, memory {:.2f}x\n", tps,
                       peak, tps > 0 ? ours / tps : 0.0, peak > 0 ? json_num(line, "peak_rss_mb") / peak : 0.0);
            line.insert(line.size() - 1, fmt::format(R"(,"torch_tokens_per_s":{:.1f},"torch_peak_rss_mb":{:.1f})", tps, peak));
        }
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
