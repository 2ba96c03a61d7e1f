// Data-parallel training against one process, on this machine: `xtgrad-lm train` on WikiText-2 as 1 process with 2
// BLAS threads and as 2 MPI processes with 1 thread each (mpirun -np 2), alternated over several rounds, for the small
// (2x200) and medium (2x650) LSTM. Prints tokens/s of each (medians of the log intervals after the warm-up, then
// the median over rounds), their ratio measured round by round, the time each batch waited for the gradient sums
// (GradientSync::finish, from the run's metrics), and the time the whole gradient's reduction takes alone (the same
// buckets, no computation, mpirun -np 2 of this program) with the bandwidth it reached.
//   ./build/tests/bench/bench_mpi [--data DIR] [--rounds 3] [--batches 20] [--warmup 5] [--only lstm-200|lstm-650]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lm.hpp>

#include "timing.hpp"

using namespace xtgrad;

using bench::median;
using bench::now;

namespace {

std::string self_dir() {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return ".";
    self[n] = '\0';
    std::string s(self);
    return s.substr(0, s.find_last_of('/'));
}

// Runs a shell command; false when it failed (its output is shown then).
bool shell(const std::string& cmd, const std::string& log) {
    const int rc = std::system((cmd + " > " + log + " 2>&1").c_str());
    if (rc == 0) return true;
    std::ifstream f(log);
    fmt::print(stderr, "failed ({}): {}\n{}\n", rc, cmd, std::string(std::istreambuf_iterator<char>(f), {}));
    return false;
}

// A number after "key": in a JSON line (the metrics lines are flat objects).
double field(const std::string& line, const std::string& key) {
    const std::size_t at = line.find("\"" + key + "\":");
    return at == std::string::npos ? -1.0 : std::strtod(line.c_str() + at + key.size() + 3, nullptr);
}

struct Measured {
    double ms_per_batch = 0, tokens_per_s = 0, wait_ms = 0, wait_fraction = 0;
};

// The metrics of a run: medians over its log intervals after the first (the warm-up).
Measured read_run(const std::string& metrics) {
    std::vector<double> ms, tps, wait, frac;
    std::size_t train = 0, comm = 0;
    for (const std::string& line : read_metrics_lines(metrics)) {
        if (line.find("\"event\":\"train\"") != std::string::npos && train++ > 0) {
            ms.push_back(field(line, "ms_per_batch"));
            tps.push_back(field(line, "tokens_per_s"));
        }
        if (line.find("\"event\":\"comm\"") != std::string::npos && comm++ > 0) {
            wait.push_back(field(line, "wait_ms_per_batch"));
            frac.push_back(field(line, "wait_fraction"));
        }
    }
    return {median(ms), median(tps), median(wait), median(frac)};
}

struct Config {
    std::string name;
    std::size_t size;
    float dropout;
};

// Worker, under mpirun: the whole gradient of the model summed through GradientSync's buckets, no computation.
int allreduce_worker(std::size_t size, std::size_t bucket_bytes, int reps) {
    std::unique_ptr<Comm> comm = make_world_comm();
    LMConfig c;
    c.vocab = 33278;  // WikiText-2's
    c.emsize = c.nhid = size;
    Rng rng(1);
    auto model = builtin_registry().build(c, rng);
    std::vector<Parameter*> params = model->parameters();
    GradientSync sync(*comm, params, bucket_bytes);
    std::vector<double> t;
    for (int r = 0; r < reps + 2; ++r) {
        comm->barrier();
        const double t0 = now();
        for (std::size_t i = params.size(); i-- > 0;) sync.ready(*params[i]);
        sync.finish();
        if (r >= 2) t.push_back(now() - t0);
    }
    std::size_t floats = 0;
    for (const Parameter* p : params) floats += p->grad.size();
    if (comm->root()) fmt::print("allreduce {} {} {}\n", median(t), floats * sizeof(float), sync.buckets());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string data, only;
    int rounds = 3;
    std::size_t batches = 20, warmup = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--worker-allreduce") {
            const std::size_t size = std::stoul(next());
            return allreduce_worker(size, static_cast<std::size_t>(std::stod(next()) * (1 << 20)), 5);
        }
        if (a == "--data") data = next();
        else if (a == "--rounds") rounds = std::max(1, std::stoi(next()));
        else if (a == "--batches") batches = std::max<std::size_t>(2, std::stoul(next()));
        else if (a == "--warmup") warmup = std::max<std::size_t>(1, std::stoul(next()));
        else if (a == "--only") only = next();
        else {
            fmt::print(stderr, "usage: bench_mpi [--data DIR] [--rounds N] [--batches N] [--warmup N] [--only NAME]\n");
            return 2;
        }
    }
    data = find_data(data, "wikitext-2");
    const std::string dir = self_dir(), lm = dir + "/../../apps/xtgrad-lm", me = dir + "/bench_mpi";
    const std::string mpirun = "mpirun --oversubscribe --allow-run-as-root -np 2";
    char tmpl[] = "/tmp/xtgrad-bench-mpi-XXXXXX";
    const std::string tmp = ::mkdtemp(tmpl);
    fmt::print("{} rounds of {} timed batches (after {}), medians; 1 process x 2 threads vs 2 processes x 1 thread\n",
               rounds, batches, warmup);
    fmt::print("{:<9} {:>12} {:>12} {:>7} {:>13} {:>8} {:>16} {:>10}\n", "config", "1x2 tok/s", "2x1 tok/s", "ratio",
               "wait ms/batch", "wait %", "sum alone ms", "GB/s");
    for (const Config& c : {Config{"lstm-200", 200, 0.2f}, Config{"lstm-650", 650, 0.5f}}) {
        if (!only.empty() && only != c.name) continue;
        const std::size_t nb = c.size > 200 ? std::max<std::size_t>(batches / 2, 4) : batches;
        const std::size_t w = c.size > 200 ? std::max<std::size_t>(warmup / 2, 2) : warmup;
        // log intervals of w batches: the first is the warm-up, the next nb / w are timed
        const std::string args = fmt::format(
            "train --data {} --emsize {} --nhid {} --dropout {} --epochs 1 --max-batches {} --log-interval {} "
            "--eval-max-batches 1 --quiet", data, c.size, c.size, c.dropout, w + nb, w);
        std::vector<double> one, two, ratio, wait, frac;
        for (int r = 0; r < rounds; ++r) {
            const std::string a = fmt::format("{}/{}-one-{}", tmp, c.name, r), b = fmt::format("{}/{}-two-{}", tmp, c.name, r);
            if (!shell(fmt::format("{} {} --threads 2 --save {}.safetensors", lm, args, a), a + ".log")) return 1;
            if (!shell(fmt::format("{} {} {} --threads 1 --save {}.safetensors", mpirun, lm, args, b), b + ".log")) return 1;
            const Measured m1 = read_run(a + ".metrics.jsonl"), m2 = read_run(b + ".metrics.jsonl");
            one.push_back(m1.tokens_per_s);
            two.push_back(m2.tokens_per_s);
            ratio.push_back(m1.ms_per_batch / m2.ms_per_batch);
            wait.push_back(m2.wait_ms);
            frac.push_back(m2.wait_fraction);
        }
        // the gradient's reduction alone, through the same buckets (and other sizes of bucket)
        double alone = 0, bytes = 0;
        std::string sizes;
        for (double mb : {4.0, 1.0, 16.0, 1024.0}) {
            const std::string log = fmt::format("{}/{}-allreduce-{}.log", tmp, c.name, mb);
            double t = 0, buckets = 0;
            if (!shell(fmt::format("{} {} --worker-allreduce {} {}", mpirun, me, c.size, mb), log)) continue;
            std::ifstream f(log);
            std::string word;
            while (f >> word)
                if (word == "allreduce") f >> t >> bytes >> buckets;
            if (mb == 4.0) alone = t;
            sizes += fmt::format("  {:g} MB: {:.0f} ms ({:.0f} buckets)", mb, t * 1e3, buckets);
        }
        fmt::print("{:<9} {:>12.0f} {:>12.0f} {:>6.2f}x {:>13.1f} {:>7.1f}% {:>16.1f} {:>10.2f}\n", c.name, median(one),
                   median(two), median(ratio), median(wait), 100 * median(frac), alone * 1e3,
                   alone > 0 ? bytes / alone / 1e9 : 0.0);
        fmt::print("          per round: ratio {:.3f}, wait fraction {:.3f}\n", fmt::join(ratio, " "), fmt::join(frac, " "));
        fmt::print("          the sum alone by bucket size:{}\n", sizes);
    }
    return 0;
}
