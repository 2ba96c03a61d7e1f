#include <xtgrad/apps/lm/config.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

void LMConfig::validate() const {
    if (cell.empty() || cell.size() > Limits::name_length)
        throw ConfigError(fmt::format("--model must be a name of 1 to {} characters", Limits::name_length));
    if (vocab == 0) throw ConfigError("model: the vocabulary is empty");
    if (vocab > Limits::vocab) throw ConfigError(fmt::format("model: {} tokens is more than the {} supported", vocab, Limits::vocab));
    if (emsize == 0 || emsize > Limits::width) throw ConfigError(fmt::format("--emsize must be in [1, {}], got {}", Limits::width, emsize));
    if (nhid == 0 || nhid > Limits::width) throw ConfigError(fmt::format("--nhid must be in [1, {}], got {}", Limits::width, nhid));
    if (nlayers == 0 || nlayers > Limits::layers)
        throw ConfigError(fmt::format("--nlayers must be in [1, {}], got {}", Limits::layers, nlayers));
    if (!(dropout >= 0.0f && dropout < 1.0f)) throw ConfigError(fmt::format("--dropout must be in [0, 1), got {}", dropout));
    if (!(weight_drop >= 0.0f && weight_drop < 1.0f))
        throw ConfigError(fmt::format("--weight-drop must be in [0, 1), got {}", weight_drop));
    for (const auto& [flag, v] : {std::pair<const char*, float>{"--dropouti", dropouti}, {"--dropouth", dropouth},
                                  {"--dropouto", dropouto}})
        if (!(v < 1.0f) || std::isnan(v)) throw ConfigError(fmt::format("{} must be below 1, got {}", flag, v));
    if (!(dropoute >= 0.0f && dropoute < 1.0f)) throw ConfigError(fmt::format("--dropoute must be in [0, 1), got {}", dropoute));
    if (!(alpha >= 0.0f && alpha <= 1e3f) || !(beta >= 0.0f && beta <= 1e3f))
        throw ConfigError(fmt::format("--alpha and --beta must be in [0, 1000], got {} and {}", alpha, beta));
    if (tied && emsize != nhid)
        throw ConfigError(fmt::format("--tied needs --emsize == --nhid (got {} and {})", emsize, nhid));
    if (cutoffs.size() > Limits::clusters)
        throw ConfigError(fmt::format("--cutoffs: at most {} clusters, got {}", Limits::clusters, cutoffs.size()));
    for (std::size_t i = 0; i < cutoffs.size(); ++i)
        if (cutoffs[i] == 0 || (i > 0 && cutoffs[i] <= cutoffs[i - 1]) || (vocab > 1 && cutoffs[i] >= vocab))
            throw ConfigError(fmt::format("--cutoffs [{}] must increase strictly, start above 0 and stay below the "
                                          "vocabulary size {}", fmt::join(cutoffs, ", "), vocab));
    if (!cutoffs.empty() && !(div_value >= 1.0f && div_value <= 1e3f))
        throw ConfigError(fmt::format("--div-value must be in [1, 1000], got {}", div_value));
    if (cell_options.all().size() > Limits::cell_options)
        throw ConfigError(fmt::format("at most {} --cell-option settings", Limits::cell_options));
}

std::string LMConfig::describe() const {
    const bool awd = locked || dropoute > 0 || alpha > 0 || beta > 0 || dropouti >= 0 || dropouth >= 0 || dropouto >= 0;
    const std::string drops = awd ? fmt::format("dropout {}{} i/h/o/e {}/{}/{}/{}{}", locked ? "locked" : "", locked ? "," : "",
                                                rate_in(), rate_between(), rate_out(), dropoute,
                                                alpha > 0 || beta > 0 ? fmt::format(", AR {} TAR {}", alpha, beta) : "")
                                  : fmt::format("dropout {}", dropout);
    return fmt::format("{} {}x{}, emsize {}, vocab {}, {}{}{}{}", cell, nlayers, nhid, emsize, vocab, drops,
                       tied ? ", tied" : "", weight_drop > 0 ? fmt::format(", weight drop {}", weight_drop) : "",
                       cutoffs.empty() ? "" : fmt::format(", adaptive softmax [{}]", fmt::join(cutoffs, ", ")));
}

void save_config(const LMConfig& c, StateDict& sd) {
    sd.metadata["model"] = c.cell;
    sd.put_int("vocab_size", static_cast<std::int64_t>(c.vocab));
    sd.put_int("emsize", static_cast<std::int64_t>(c.emsize));
    sd.put_int("nhid", static_cast<std::int64_t>(c.nhid));
    sd.put_int("nlayers", static_cast<std::int64_t>(c.nlayers));
    sd.put_double("dropout", c.dropout);
    sd.put_int("tied", c.tied);
    if (c.weight_drop > 0.0f) sd.put_double("weight_drop", c.weight_drop);
    if (c.dropouti >= 0.0f) sd.put_double("dropouti", c.dropouti);
    if (c.dropouth >= 0.0f) sd.put_double("dropouth", c.dropouth);
    if (c.dropouto >= 0.0f) sd.put_double("dropouto", c.dropouto);
    if (c.dropoute > 0.0f) sd.put_double("dropoute", c.dropoute);
    if (c.locked) sd.put_int("locked_dropout", 1);
    if (c.alpha > 0.0f) sd.put_double("alpha", c.alpha);
    if (c.beta > 0.0f) sd.put_double("beta", c.beta);
    if (!c.cell_options.all().empty()) sd.metadata["cell_options"] = nlohmann::json(c.cell_options.all()).dump();
    if (!c.cutoffs.empty()) {
        sd.metadata["cutoffs"] = fmt::format("{}", fmt::join(c.cutoffs, ","));
        sd.put_double("div_value", c.div_value);
        sd.metadata["order"] = fmt::format("{}", fmt::join(c.order, ","));
    }
}

LMConfig load_config(const StateDict& sd, const std::string& ctx) {
    const MetaReader m(sd, ctx);
    LMConfig c;
    c.cell = m.text("model", Limits::name_length);
    c.vocab = m.count("vocab_size", 1, Limits::vocab);
    c.emsize = m.count("emsize", 1, Limits::width);
    c.nhid = m.count("nhid", 1, Limits::width);
    c.nlayers = m.count("nlayers", 1, Limits::layers);
    c.dropout = static_cast<float>(m.real("dropout", 0.0, 0.999999));
    c.tied = m.flag("tied");
    if (m.has("weight_drop")) c.weight_drop = static_cast<float>(m.real("weight_drop", 0.0, 0.999999));
    if (m.has("dropouti")) c.dropouti = static_cast<float>(m.real("dropouti", 0.0, 0.999999));
    if (m.has("dropouth")) c.dropouth = static_cast<float>(m.real("dropouth", 0.0, 0.999999));
    if (m.has("dropouto")) c.dropouto = static_cast<float>(m.real("dropouto", 0.0, 0.999999));
    if (m.has("dropoute")) c.dropoute = static_cast<float>(m.real("dropoute", 0.0, 0.999999));
    if (m.has("locked_dropout")) c.locked = m.flag("locked_dropout");
    if (m.has("alpha")) c.alpha = static_cast<float>(m.real("alpha", 0.0, 1e3));
    if (m.has("beta")) c.beta = static_cast<float>(m.real("beta", 0.0, 1e3));
    if (m.has("cell_options"))
        for (const auto& [k, v] : m.string_map("cell_options", Limits::cell_options)) c.cell_options.set(k, v);
    if (m.has("cutoffs")) {
        for (std::uint64_t v : m.list("cutoffs", 1, c.vocab - 1, Limits::clusters)) c.cutoffs.push_back(v);
        c.div_value = static_cast<float>(m.real("div_value", 1.0, 1e3));
        const std::vector<std::uint64_t> order = m.list("order", 0, c.vocab - 1, c.vocab);
        if (order.size() != c.vocab) m.fail("order", fmt::format("has {} entries for {} tokens", order.size(), c.vocab));
        std::vector<bool> seen(c.vocab, false);
        for (std::size_t id = 0; id < order.size(); ++id) {
            if (seen[order[id]]) m.fail("order", fmt::format("is not a permutation: rank {} appears twice", order[id]));
            seen[order[id]] = true;
            c.order.push_back(static_cast<std::int32_t>(order[id]));
        }
    }
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw FileError(fmt::format("{}: bad model settings: {}", ctx, e.what()));
    }
    return c;
}

LMConfig infer_pytorch_config(const StateDict& sd, const std::string& cell_hint, const std::string& ctx) {
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
    if (gates == 4) c.cell = "LSTM";
    else if (gates == 3) c.cell = "GRU";
    else if (gates == 1) c.cell = cell_hint == "RNN_RELU" ? "RNN_RELU" : "RNN_TANH";
    else throw FileError(fmt::format("{}: rnn.weight_hh_l0 has {} gates; expected 4 (LSTM), 3 (GRU) or 1 (RNN)", ctx, gates));
    if (!cell_hint.empty() && cell_hint != c.cell)
        throw FileError(fmt::format("{}: the weights are of a {} model, but --model {} was given", ctx, c.cell, cell_hint));
    c.nlayers = 0;
    while (c.nlayers <= Limits::layers && sd.tensors.count(fmt::format("rnn.weight_ih_l{}", c.nlayers))) ++c.nlayers;
    const auto& dec = sd.get("decoder.weight", ctx);
    c.tied = dec.value == enc.value;
    if (wih.shape[1] != c.emsize)
        throw FileError(fmt::format("{}: rnn.weight_ih_l0 takes {} features but encoder.weight gives {}", ctx, wih.shape[1],
                                    c.emsize));
    c.dropout = 0.0f;  // irrelevant for evaluation and sampling
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw FileError(fmt::format("{}: bad model settings: {}", ctx, e.what()));
    }
    return c;
}

}  // namespace xtgrad
