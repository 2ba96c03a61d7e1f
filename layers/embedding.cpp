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
    : weight(name + ".weight", vocab, dim) {
    fill_normal(weight.value, rng, 0.0f, 1.0f);
    weight.track_grad_rows(true);  // a window reaches few of the vocabulary's rows
}

Var Embedding::operator()(Ctx& c, const Ids& ids) { return gather(c.tape.param(weight), ids); }

Var embedding_dropout_mask(Ctx& c, const Ids& ids, std::size_t vocab, float p) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("embedding dropout: rate must be in [0, 1), got {}", p));
    Tape& t = c.tape;
    TypeMasks& tm = t.scratch<TypeMasks>();
    if (tm.stamp.size() != vocab) {
        tm.stamp.assign(vocab, 0);
        tm.mask.assign(vocab, 0.0f);
    }
    if (++tm.now == 0) {  // wrapped: forget every old decision
        std::fill(tm.stamp.begin(), tm.stamp.end(), 0);
        tm.now = 1;
    }
    Var m = t.constant({ids.size(), 1}, 0.0f);
    Array& token_mask = t.node(m).value;
    // a word type's fate is a function of (one draw, its id): the same in every process of a data-parallel run,
    // whichever of its occurrences each one holds
    const std::uint64_t seed = c.rng.next_u64(), threshold = bernoulli_threshold(p);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= vocab)
            throw IndexError(fmt::format("embedding dropout: id {} at position {} is outside [0, {})", ids[i], i, vocab));
        const auto w = static_cast<std::size_t>(ids[i]);
        if (tm.stamp[w] != tm.now) {
            tm.stamp[w] = tm.now;
            tm.mask[w] = (counter_bits(seed, w) >> 32) < threshold ? 0.0f : 1.0f / (1.0f - p);
        }
        token_mask(i, 0) = tm.mask[w];
    }
    return m;
}

Var Embedding::operator()(Ctx& c, const Ids& ids, float p) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("embedding dropout: rate must be in [0, 1), got {}", p));
    Var rows = gather(c.tape.param(weight), ids);
    if (p == 0.0f || !c.training) return rows;
    return mul(rows, embedding_dropout_mask(c, ids, vocab(), p));
}

void Embedding::collect(std::vector<Parameter*>& out) { out.push_back(&weight); }

}  // namespace xtgrad
