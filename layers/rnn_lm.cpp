#include <xtgrad/layers/rnn_lm.hpp>

#include <cstdlib>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

void LMConfig::validate() const {
    parse_cell_type(model);
    if (vocab == 0) throw ConfigError("model: the vocabulary is empty");
    if (emsize == 0) throw ConfigError("--emsize must be positive");
    if (nhid == 0) throw ConfigError("--nhid must be positive");
    if (nlayers == 0) throw ConfigError("--nlayers must be positive");
    if (!(dropout >= 0.0f && dropout < 1.0f)) throw ConfigError(fmt::format("--dropout must be in [0, 1), got {}", dropout));
    if (tied && emsize != nhid)
        throw ConfigError(fmt::format("--tied needs --emsize == --nhid (got {} and {})", emsize, nhid));
    if (tied && !cutoffs.empty()) throw ConfigError("--tied and --adaptive-softmax exclude each other");
    if (!cutoffs.empty() && vocab > 1 && cutoffs.back() >= vocab)
        throw ConfigError(fmt::format("--cutoffs: the last cutoff {} must be below the vocabulary size {}", cutoffs.back(), vocab));
}

void LMConfig::save(StateDict& sd) const {
    sd.metadata["model"] = model;
    sd.put_int("vocab_size", static_cast<std::int64_t>(vocab));
    sd.put_int("emsize", static_cast<std::int64_t>(emsize));
    sd.put_int("nhid", static_cast<std::int64_t>(nhid));
    sd.put_int("nlayers", static_cast<std::int64_t>(nlayers));
    sd.put_double("dropout", dropout);
    sd.put_int("tied", tied);
    if (!cutoffs.empty()) {
        sd.metadata["cutoffs"] = fmt::format("{}", fmt::join(cutoffs, ","));
        sd.put_double("div_value", div_value);
        sd.metadata["order"] = fmt::format("{}", fmt::join(order, ","));
    }
}

namespace {
// "1,2,3" -> {1, 2, 3}; throws FileError naming the key.
template <class T>
std::vector<T> parse_list(const std::string& s, const std::string& key, const std::string& ctx) {
    std::vector<T> out;
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t next = s.find(',', pos);
        if (next == std::string::npos) next = s.size();
        const std::string item = s.substr(pos, next - pos);
        char* end = nullptr;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0) throw FileError(fmt::format("{}: metadata '{}' is not a list of counts", ctx, key));
        out.push_back(static_cast<T>(v));
        pos = next + 1;
    }
    return out;
}
}  // namespace

LMConfig LMConfig::load(const StateDict& sd, const std::string& ctx) {
    LMConfig c;
    c.model = sd.get_string("model", ctx);
    auto positive = [&](const char* key) {
        const std::int64_t v = sd.get_int(key, ctx);
        if (v <= 0) throw FileError(fmt::format("{}: metadata '{}' = {} must be positive", ctx, key, v));
        return static_cast<std::size_t>(v);
    };
    c.vocab = positive("vocab_size");
    c.emsize = positive("emsize");
    c.nhid = positive("nhid");
    c.nlayers = positive("nlayers");
    c.dropout = static_cast<float>(sd.get_double("dropout", ctx));
    c.tied = sd.get_int("tied", ctx) != 0;
    if (sd.has_meta("cutoffs")) {
        c.cutoffs = parse_list<std::size_t>(sd.get_string("cutoffs", ctx), "cutoffs", ctx);
        c.div_value = static_cast<float>(sd.get_double("div_value", ctx));
        c.order = parse_list<std::int32_t>(sd.get_string("order", ctx), "order", ctx);
        if (!c.order.empty() && c.order.size() != c.vocab)
            throw FileError(fmt::format("{}: metadata 'order' has {} entries for {} tokens", ctx, c.order.size(), c.vocab));
    }
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw FileError(fmt::format("{}: bad model settings: {}", ctx, e.what()));
    }
    return c;
}

LMConfig LMConfig::infer(const StateDict& sd, const std::string& model_hint, const std::string& ctx) {
    LMConfig c;
    const auto& enc = sd.get("encoder.weight", ctx);
    const auto& wih = sd.get("rnn.weight_ih_l0", ctx);
    const auto& whh = sd.get("rnn.weight_hh_l0", ctx);
    if (enc.shape.size() != 2 || wih.shape.size() != 2 || whh.shape.size() != 2)
        throw FileError(fmt::format("{}: encoder.weight and rnn.weight_*_l0 must be matrices", ctx));
    c.vocab = enc.shape[0];
    c.emsize = enc.shape[1];
    c.nhid = whh.shape[1];
    if (c.nhid == 0 || whh.shape[0] % c.nhid != 0)
        throw FileError(fmt::format("{}: rnn.weight_hh_l0 has shape {}, not (gates*H x H)", ctx, shape_str(whh.shape)));
    const std::size_t gates = whh.shape[0] / c.nhid;
    if (gates == 4) c.model = "LSTM";
    else if (gates == 3) c.model = "GRU";
    else if (gates == 1) c.model = model_hint == "RNN_RELU" ? "RNN_RELU" : "RNN_TANH";
    else throw FileError(fmt::format("{}: rnn.weight_hh_l0 has {} gates; expected 4 (LSTM), 3 (GRU) or 1 (RNN)", ctx, gates));
    if (!model_hint.empty() && model_hint != c.model)
        throw FileError(fmt::format("{}: the weights are of a {} model, but --model {} was given", ctx, c.model, model_hint));
    c.nlayers = 0;
    while (sd.tensors.count(fmt::format("rnn.weight_ih_l{}", c.nlayers))) ++c.nlayers;
    const auto& dec = sd.get("decoder.weight", ctx);
    c.tied = dec.value == enc.value;
    if (wih.shape[1] != c.emsize)
        throw FileError(fmt::format("{}: rnn.weight_ih_l0 takes {} features but encoder.weight gives {}", ctx, wih.shape[1],
                                    c.emsize));
    c.dropout = 0.0f;  // irrelevant for evaluation and sampling
    return c;
}

std::string LMConfig::describe() const {
    return fmt::format("{} {}x{}, emsize {}, vocab {}, dropout {}{}{}", model, nlayers, nhid, emsize, vocab, dropout,
                       tied ? ", tied" : "",
                       cutoffs.empty() ? "" : fmt::format(", adaptive softmax [{}]", fmt::join(cutoffs, ", ")));
}

namespace {
const LMConfig& validated(const LMConfig& c) {
    c.validate();
    return c;
}
}  // namespace

RNNLM::RNNLM(const LMConfig& c, Rng& rng, const CellFactory& custom_cell)
    : config(validated(c)),
      encoder("encoder", c.vocab, c.emsize, rng),
      rnn("rnn", custom_cell ? custom_cell : builtin_cell(parse_cell_type(c.model)), c.emsize, c.nhid, c.nlayers,
          c.nlayers > 1 ? c.dropout : 0.0f, false, rng),
      decoder("decoder", c.nhid, c.cutoffs.empty() ? c.vocab : 0, rng),  // empty when the adaptive softmax decodes
      drop(c.dropout) {
    fill_uniform(encoder.weight.value, rng, -0.1f, 0.1f);
    fill_uniform(decoder.weight.value, rng, -0.1f, 0.1f);
    decoder.bias.value.fill(0.0f);
    if (c.tied) decoder.tie_weight(encoder.weight);
    if (!c.cutoffs.empty())
        adaptive = std::make_unique<AdaptiveSoftmax>("decoder", c.nhid, c.vocab, c.cutoffs, c.div_value, rng, c.order);
}

Var RNNLM::top(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state, Rng& rng, bool training) {
    Var emb = drop(encoder(t, ids), rng, training);
    Var out = rnn(emb, batch, state, rng, training);
    return drop(out, rng, training);
}

Var RNNLM::operator()(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state, Rng& rng, bool training) {
    if (adaptive) throw ConfigError("RNNLM: an adaptive-softmax model has no logit matrix; use loss() or log_probs()");
    return decoder(top(t, ids, batch, state, rng, training));
}

Var RNNLM::loss(Tape& t, const Ids& ids, const Ids& targets, std::size_t batch, RecurrentState& state, Rng& rng,
                bool training, Reduction reduction) {
    Var h = top(t, ids, batch, state, rng, training);
    return adaptive ? adaptive->loss(h, targets, reduction) : cross_entropy(decoder(h), targets, reduction);
}

Array RNNLM::log_probs(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state) {
    Rng unused(0);
    Var h = top(t, ids, batch, state, unused, false);
    return adaptive ? adaptive->log_prob(t, h) : log_softmax(decoder(h)).value();
}

void RNNLM::collect(std::vector<Parameter*>& out) {
    encoder.collect(out);
    rnn.collect(out);
    if (adaptive) adaptive->collect(out);
    else decoder.collect(out);
}

void RNNLM::save_weights(StateDict& sd) const {
    auto& self = const_cast<RNNLM&>(*this);
    for (Parameter* p : self.parameters()) sd.put(p->name, p->value, p->export_shape);
    if (config.tied) sd.put("decoder.weight", encoder.weight.value);
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
