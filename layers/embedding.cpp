#include <xtgrad/layers/embedding.hpp>

#include <algorithm>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

namespace {
// Per word type, the mask decided in the current call (stamped with the call), pooled by the tape.
struct TypeMasks {
    std::vector<float> mask;
    std::vector<std::uint32_t> stamp;
    std::uint32_t now = 0;
};
}  // namespace

Embedding::Embedding(const std::string& name, std::size_t vocab, std::size_t dim, Rng& rng)
    : weight(name + ".weight", Array({vocab, dim})) {
    fill_normal(weight.value, rng, 0.0f, 1.0f);
    weight.track_grad_rows(true);  // a window reaches few of the vocabulary's rows
}

Var Embedding::operator()(Ctx& c, const Ids& ids) { return gather(c.tape.param(weight), ids); }

Var Embedding::operator()(Ctx& c, const Ids& ids, float p) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("embedding dropout: rate must be in [0, 1), got {}", p));
    Tape& t = c.tape;
    Var rows = gather(t.param(weight), ids);
    if (p == 0.0f || !c.training) return rows;
    const std::size_t V = vocab();
    TypeMasks& tm = t.scratch<TypeMasks>();
    if (tm.stamp.size() != V) {
        tm.stamp.assign(V, 0);
        tm.mask.assign(V, 0.0f);
    }
    if (++tm.now == 0) {  // wrapped: forget every old decision
        std::fill(tm.stamp.begin(), tm.stamp.end(), 0);
        tm.now = 1;
    }
    Var m = t.constant({ids.size(), 1}, 0.0f);
    Array& token_mask = t.node(m).value;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto w = static_cast<std::size_t>(ids[i]);  // in range: gather checked it
        if (tm.stamp[w] != tm.now) {
            tm.stamp[w] = tm.now;
            tm.mask[w] = c.rng.uniform() < p ? 0.0f : 1.0f / (1.0f - p);
        }
        token_mask(i, 0) = tm.mask[w];
    }
    return mul(rows, m);
}

void Embedding::collect(std::vector<Parameter*>& out) { out.push_back(&weight); }

}  // namespace xtgrad
