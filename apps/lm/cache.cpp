#include <xtgrad/apps/lm/cache.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>

namespace xtgrad {

CacheTrace trace_for_cache(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches) {
    if (data.steps < 2) throw ConfigError(fmt::format("cache: the split has {} steps: too short", data.steps));
    Tape tape;
    NoGrad ng(tape);
    Rng unused(0);
    Ctx c{tape, unused, false};
    const std::size_t B = data.batch;
    CacheTrace tr;
    tr.streams = B;
    tr.width = model.rnn.output_size();
    std::size_t windows = (data.steps - 1 + bptt - 1) / bptt;
    if (max_batches) windows = std::min(windows, max_batches);
    tr.positions = std::min(data.steps - 1, windows * bptt);
    tr.hidden.assign(B, Array({tr.positions, tr.width}));
    tr.targets.assign(B, Ids(tr.positions));
    tr.model_logp.assign(B, std::vector<double>(tr.positions));
    RecurrentState hidden = model.zero_state(B);
    Ids in, tg;
    for (std::size_t i = 0; i < tr.positions; i += bptt) {
        const std::size_t n = get_batch(data, i, std::min(bptt, tr.positions - i), in, tg);
        tape.clear();
        const RecurrentOutput f = model.features(c, in, B, hidden);
        const Array lp = model.log_probs(c, f.y);
        const Array& h = f.y.value();
        for (std::size_t t = 0; t < n; ++t)
            for (std::size_t b = 0; b < B; ++b) {
                const std::size_t r = t * B + b;
                std::copy(h.data() + r * tr.width, h.data() + (r + 1) * tr.width,
                          tr.hidden[b].data() + (i + t) * tr.width);
                tr.targets[b][i + t] = tg[r];
                tr.model_logp[b][i + t] = lp(r, static_cast<std::size_t>(tg[r]));
            }
        hidden.assign(f);
    }
    return tr;
}

double cache_loss(const CacheTrace& tr, const CacheOptions& o) {
    if (!(o.lambda >= 0.0 && o.lambda <= 1.0)) throw ConfigError(fmt::format("--cache-lambda must be in [0, 1], got {}", o.lambda));
    if (!(o.theta >= 0.0) || !std::isfinite(o.theta)) throw ConfigError(fmt::format("--cache-theta must be >= 0, got {}", o.theta));
    double total = 0.0;
    const std::size_t P = tr.positions, N = o.size;
    const bool cache = N > 0 && o.lambda > 0.0;
    constexpr std::size_t kBlock = 64;  // positions scored by one matrix product
    Array scores;
    for (std::size_t b = 0; b < tr.streams; ++b) {
        const Array& h = tr.hidden[b];
        for (std::size_t t0 = 0; t0 < P; t0 += kBlock) {
            const std::size_t t1 = std::min(P, t0 + kBlock);
            const std::size_t lo = t0 > N ? t0 - N : 0;  // the earliest pair any position of the block can see
            if (cache && t1 - 1 > lo) {
                // scores(t, i) = h_t . h_i for t in [t0, t1), i in [lo, t1 - 1)
                ensure_shape(scores, {t1 - t0, t1 - 1 - lo});
                gemm("cache scores", crows(h, t0, t1), false, crows(h, lo, t1 - 1), true, mat(scores), 1.0f, 0.0f);
            }
            for (std::size_t t = t0; t < t1; ++t) {
                const double pm = std::exp(tr.model_logp[b][t]);
                double p = pm;
                const std::size_t first = t > N ? t - N : 0;
                if (cache && t > first) {
                    const float* s = scores.data() + (t - t0) * scores.shape()[1];  // s[i - lo] for i in [first, t)
                    double m = -std::numeric_limits<double>::infinity();
                    for (std::size_t i = first; i < t; ++i) m = std::max(m, o.theta * s[i - lo]);
                    double z = 0.0, hit = 0.0;
                    const std::int32_t w = tr.targets[b][t];
                    for (std::size_t i = first; i < t; ++i) {
                        const double e = std::exp(o.theta * s[i - lo] - m);
                        z += e;
                        if (tr.targets[b][i] == w) hit += e;
                    }
                    p = (1.0 - o.lambda) * pm + o.lambda * hit / z;
                }
                total -= std::log(p);
            }
        }
    }
    return total / static_cast<double>(P * tr.streams);
}

CacheTuning tune_cache(const CacheTrace& tr, std::size_t size, const std::vector<double>& thetas,
                       const std::vector<double>& lambdas) {
    CacheTuning r;
    r.model_loss = cache_loss(tr, {});
    r.best_loss = std::numeric_limits<double>::infinity();
    for (double theta : thetas)
        for (double lambda : lambdas) {
            const CacheOptions o{size, theta, lambda};
            const double l = cache_loss(tr, o);
            r.grid.push_back({theta, lambda, l});
            if (l < r.best_loss) r.best_loss = l, r.best = o;
        }
    return r;
}

}  // namespace xtgrad
