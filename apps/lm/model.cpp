#include <xtgrad/apps/lm/model.hpp>

#include <fmt/core.h>

#include <xtgrad/tape/ops.hpp>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {
const LMConfig& validated(const LMConfig& c) {
    c.validate();
    return c;
}
}  // namespace

RNNLM::RNNLM(const LMConfig& c, const CellFactory& cell, Rng& rng)
    : config(validated(c)),
      encoder("encoder", c.tied && !c.cutoffs.empty() ? 0 : c.vocab, c.emsize, rng),  // empty with adaptive input
      rnn("rnn", cell, c.emsize, c.nhid, c.nlayers, c.nlayers > 1 ? c.rate_between() : 0.0f, false, rng,
          c.weight_drop, c.cell_options),
      decoder("decoder", rnn.output_size(), c.cutoffs.empty() ? c.vocab : 0, rng) {  // empty with the adaptive softmax
    rnn.locked_dropout = c.locked;
    fill_uniform(encoder.weight.value, rng, -0.1f, 0.1f);
    fill_uniform(decoder.weight.value, rng, -0.1f, 0.1f);
    decoder.bias.value.fill(0.0f);
    if (c.tied && c.cutoffs.empty()) decoder.tie_weight(encoder.weight);
    if (!c.cutoffs.empty())
        adaptive = std::make_unique<AdaptiveSoftmax>("decoder", rnn.output_size(), c.vocab, c.cutoffs, c.div_value, rng,
                                                     c.order);
}

RecurrentState RNNLM::zero_state(std::size_t batch) const { return rnn.zero_state(batch); }

Var RNNLM::drop(Ctx& c, Var x, float p, std::size_t batch) const {
    if (!c.training || p == 0.0f) return x;
    return config.locked ? LockedDropout(p)(c, x, batch) : Dropout(p)(c, x, batch);
}

bool RNNLM::adaptive_input() const { return adaptive && config.tied; }

Var RNNLM::embed(Ctx& c, const Ids& ids) {
    if (!adaptive_input()) return config.dropoute > 0.0f ? encoder(c, ids, config.dropoute) : encoder(c, ids);
    Var emb = adaptive->embed(c.tape, ids);
    if (!c.training || config.dropoute == 0.0f) return emb;
    return mul(emb, embedding_dropout_mask(c, ids, config.vocab, config.dropoute));
}

Array RNNLM::embedding_table() const {
    if (!adaptive_input()) return encoder.weight.value;
    Tape t;
    Ids all(config.vocab);
    for (std::size_t id = 0; id < all.size(); ++id) all[id] = static_cast<std::int32_t>(id);
    NoGrad ng(t);
    return adaptive->embed(t, all).value();
}

LMFeatures RNNLM::features(Ctx& c, const Ids& ids, std::size_t batch, const RecurrentState& state) {
    Var emb = embed(c, ids);
    LMFeatures out;
    static_cast<RecurrentOutput&>(out) = rnn(c, drop(c, emb, config.rate_in(), batch), batch, state);
    const Var raw = out.y;
    out.y = drop(c, raw, config.rate_out(), batch);
    if (c.training && config.alpha > 0.0f) out.penalty = config.alpha * mean(out.y * out.y);  // AR, on dropped outputs
    const std::size_t n = raw.rows();
    if (c.training && config.beta > 0.0f && n > batch) {  // TAR: slowness of the raw outputs
        Var d = xtgrad::rows(raw, batch, n) - xtgrad::rows(raw, 0, n - batch);
        Var tar = config.beta * mean(d * d);
        out.penalty = out.penalty.tape ? out.penalty + tar : tar;
    }
    return out;
}

Var RNNLM::logits(Var h) {
    if (adaptive) throw ConfigError("RNNLM: an adaptive-softmax model has no logit matrix; use loss() or log_probs()");
    return decoder(h);
}

Var RNNLM::loss(Ctx& c, Var h, const Ids& targets, Reduction reduction) {
    (void)c;
    return adaptive ? adaptive->loss(h, targets, reduction) : cross_entropy(decoder(h), targets, reduction);
}

Array RNNLM::log_probs(Ctx& c, Var h) {
    return adaptive ? adaptive->log_prob(c.tape, h) : log_softmax(decoder(h)).value();
}

void RNNLM::collect(std::vector<Parameter*>& out) {
    if (!adaptive_input()) encoder.collect(out);
    rnn.collect(out);
    if (adaptive) adaptive->collect(out);
    else decoder.collect(out);
}

void RNNLM::save_weights(StateDict& sd) const {
    for (const Parameter* p : parameters()) sd.put(p->name, p->value, p->export_shape);
    if (config.tied && !adaptive) sd.put("decoder.weight", encoder.weight.value);
}

void RNNLM::load_weights(const StateDict& sd, const std::string& ctx) {
    std::vector<Parameter*> params = parameters();
    for (Parameter* p : params) {
        const StateDict::Entry& e = sd.get(p->name, ctx);
        const std::vector<std::size_t> want =
            p->export_shape.empty() ? std::vector<std::size_t>{p->value.shape()[0], p->value.shape()[1]} : p->export_shape;
        if (e.shape != want)
            throw FileError(fmt::format("{}: tensor '{}' has shape {}, this {} model needs {}", ctx, p->name,
                                        shape_str(e.shape), config.describe(), shape_str(want)));
    }
    for (const auto& kv : sd.tensors) {
        const std::string& name = kv.first;
        if (name.rfind("optim.", 0) == 0 || name.rfind("state.", 0) == 0) continue;
        if (name == "decoder.weight" && config.tied) continue;
        if (!find_parameter(params, name))
            throw FileError(fmt::format("{}: unexpected tensor '{}' for a {} model", ctx, name, config.describe()));
    }
    for (Parameter* p : params) std::copy(sd.get(p->name).value.begin(), sd.get(p->name).value.end(), p->value.begin());
}

}  // namespace xtgrad
