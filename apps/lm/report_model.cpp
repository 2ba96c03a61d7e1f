#include <xtgrad/apps/lm/report_model.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <ostream>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/apps/lm/metrics.hpp>
#include <xtgrad/apps/lm/options.hpp>
#include <xtgrad/apps/lm/report_page.hpp>
#include <xtgrad/apps/lm/sha256.hpp>
#include <xtgrad/apps/lm/trace_events.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>

namespace xtgrad {

namespace {

using json = nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kAttention = "attn";  // the probe name of attention weights (docs/report.md)

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

bool exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A number for the document: null when not finite.
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// ---------------------------------------------------------------------------------------------------------------
// Recording probed values

// Keeps row 0 of every value probed in the forward direction at batch 1, as one series per (layer, name).
class PassageRecorder : public Probes {
public:
    PassageRecorder(std::size_t tokens, const std::vector<StatePart>& parts) : T_(tokens) {
        for (const StatePart& p : parts) state_names_.push_back(p.name);
    }
    std::size_t base = 0;  // the passage position of the window's step 0

    void record(const ProbePoint& where, const char* name, Var v) override {
        const Array& a = v.value();
        if (where.dir != 0 || a.shape()[0] != 1 || a.shape()[1] == 0) {
            skipped_.insert(fmt::format("layer {} '{}' ({})", where.layer, name,
                                        where.dir != 0 ? "reverse direction" : fmt::format("shape {}", shape_str(a))));
            return;
        }
        const auto key = std::make_pair(where.layer, std::string(name));
        auto it = index_.find(key);
        if (it == index_.end()) {
            PassageTrace::Series s;
            s.layer = where.layer;
            s.name = name;
            s.state = std::find(state_names_.begin(), state_names_.end(), s.name) != state_names_.end();
            s.width = a.shape()[1];
            s.values.assign(T_ * s.width, 0.0f);
            it = index_.emplace(key, series_.size()).first;
            series_.push_back(std::move(s));
        }
        PassageTrace::Series& s = series_[it->second];
        if (a.shape()[1] != s.width)
            throw ReportError(fmt::format("report: layer {} probed '{}' with {} values at step {}, {} before", where.layer,
                                          name, a.shape()[1], base + where.t, s.width));
        const std::size_t t = base + where.t;
        if (t < T_) std::copy(a.data(), a.data() + s.width, s.values.begin() + static_cast<long>(t * s.width));
    }

    // The series by layer; per layer the state parts in their order, then the probes as first seen.
    std::vector<PassageTrace::Series> take() {
        std::vector<std::size_t> order(series_.size());
        std::iota(order.begin(), order.end(), 0);
        auto rank = [&](const PassageTrace::Series& s) {
            const auto at = std::find(state_names_.begin(), state_names_.end(), s.name);
            return s.state ? static_cast<std::size_t>(at - state_names_.begin()) : state_names_.size();
        };
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            const auto &x = series_[a], &y = series_[b];
            return x.layer != y.layer ? x.layer < y.layer : rank(x) < rank(y);
        });
        std::vector<PassageTrace::Series> out;
        for (std::size_t i : order) out.push_back(std::move(series_[i]));
        return out;
    }
    std::vector<std::string> skipped() const { return {skipped_.begin(), skipped_.end()}; }

private:
    std::size_t T_;
    std::vector<std::string> state_names_;
    std::map<std::pair<std::size_t, std::string>, std::size_t> index_;
    std::vector<PassageTrace::Series> series_;
    std::set<std::string> skipped_;
};

// Keeps the handles of every layer's h at every step of a window (for its gradient after backward).
class StateRecorder : public Probes {
public:
    std::vector<std::vector<Var>> h;  // h[layer][t]

    void record(const ProbePoint& where, const char* name, Var v) override {
        if (where.dir == 0 && std::strcmp(name, "h") == 0 && where.layer < h.size() && where.t < h[where.layer].size())
            h[where.layer][where.t] = v;
    }
};

// The k largest entries of a row of log-probabilities, as (id, probability), best first.
std::vector<std::pair<std::int32_t, double>> top_of(const float* row, std::size_t V, std::size_t k,
                                                    std::vector<std::int32_t>& order) {
    order.resize(V);
    std::iota(order.begin(), order.end(), 0);
    k = std::min(k, V);
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                      [&](std::int32_t a, std::int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    std::vector<std::pair<std::int32_t, double>> out;
    for (std::size_t j = 0; j < k; ++j) out.emplace_back(order[j], std::exp(static_cast<double>(row[order[j]])));
    return out;
}

}  // namespace

PassageTrace trace_passage(RNNLM& model, const Ids& ids, std::size_t window, std::size_t top_k) {
    const std::size_t T = ids.size();
    if (T < 2) throw ConfigError(fmt::format("report: a passage of {} tokens; at least 2 are needed", T));
    if (window == 0) throw ConfigError("report: the window must have at least one step");
    PassageTrace out;
    out.loss.assign(T, kNaN);
    out.top.assign(T, {});
    Tape tape;
    NoGrad ng(tape);
    Rng unused(0);
    PassageRecorder rec(T, model.rnn.state_parts());
    Ctx c{tape, unused, false, &rec};
    RecurrentState hidden = model.zero_state(1);
    Ids in;
    std::vector<std::int32_t> order;
    for (std::size_t t0 = 0; t0 < T; t0 += window) {
        const std::size_t n = std::min(window, T - t0);
        in.assign(ids.begin() + static_cast<long>(t0), ids.begin() + static_cast<long>(t0 + n));
        tape.clear();
        rec.base = t0;
        const LMFeatures f = model.features(c, in, 1, hidden);
        const Array lp = model.log_probs(c, f.y);
        hidden.assign(f);
        const std::size_t V = lp.shape()[1];
        for (std::size_t k = 0; k < n && t0 + k + 1 < T; ++k) {  // step t0 + k predicts token t0 + k + 1
            const std::size_t t = t0 + k + 1;
            const float* row = lp.data() + k * V;
            out.loss[t] = -static_cast<double>(row[ids[t]]);
            out.top[t] = top_of(row, V, top_k, order);
        }
    }
    out.series = rec.take();
    out.skipped = rec.skipped();
    return out;
}

std::pair<std::vector<std::vector<double>>, std::size_t> gradient_flow_norms(RNNLM& model, const Ids& stream,
                                                                             std::size_t window, std::size_t windows) {
    if (window == 0) throw ConfigError("report: the window must have at least one step");
    const std::size_t L = model.rnn.num_layers();
    std::vector<std::vector<double>> sum(L, std::vector<double>(window, 0.0));
    Tape tape;
    Rng unused(0);
    StateRecorder rec;
    Ctx c{tape, unused, false, &rec};
    RecurrentState hidden = model.zero_state(1);
    Ids in, target(1);
    std::size_t used = 0;
    for (std::size_t w = 0; w < windows && (w + 1) * window < stream.size(); ++w) {
        const std::size_t t0 = w * window;
        in.assign(stream.begin() + static_cast<long>(t0), stream.begin() + static_cast<long>(t0 + window));
        target[0] = stream[t0 + window];
        tape.clear();
        rec.h.assign(L, std::vector<Var>(window));
        const LMFeatures f = model.features(c, in, 1, hidden);
        const Var loss = model.loss(c, rows(f.y, window - 1, window), target);
        tape.backward(loss);
        for (std::size_t l = 0; l < L; ++l)
            for (std::size_t t = 0; t < window; ++t) {
                const Var& h = rec.h[l][t];
                if (!h.tape) continue;  // a layer that recorded no "h" (a whole model of a user's)
                sum[l][t] += gradient_flow({h})[0];
            }
        hidden.assign(f);
        ++used;
    }
    model.zero_grad();  // the parameters' gradients of these passes serve nothing
    for (auto& layer : sum)
        for (double& v : layer) v = used ? v / static_cast<double>(used) : kNaN;
    return {sum, used};
}

std::vector<double> loss_by_position(RNNLM& model, const Batched& data, std::size_t window, std::size_t max_tokens) {
    if (window == 0) throw ConfigError("report: the window must have at least one step");
    std::vector<double> sum(window, 0.0), count(window, 0.0);
    Tape tape;
    NoGrad ng(tape);
    Rng unused(0);
    Ctx c{tape, unused, false};
    const RecurrentState zero = model.zero_state(data.batch);
    Ids in, tg;
    std::size_t done = 0;
    for (std::size_t i = 0; i + 1 < data.steps && done < max_tokens; i += window) {
        const std::size_t n = get_batch(data, i, window, in, tg);
        tape.clear();
        const LMFeatures f = model.features(c, in, data.batch, zero);
        const Array lp = model.log_probs(c, f.y);
        const std::size_t V = lp.shape()[1];
        for (std::size_t k = 0; k < n; ++k)
            for (std::size_t b = 0; b < data.batch; ++b) {
                const std::size_t r = k * data.batch + b;
                sum[k] -= lp.data()[r * V + static_cast<std::size_t>(tg[r])];
                count[k] += 1;
            }
        done += n * data.batch;
    }
    for (std::size_t k = 0; k < window; ++k) sum[k] = count[k] > 0 ? sum[k] / count[k] : kNaN;
    return sum;
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Sections

// A string member of a JSON object, or "" (absent or not a string).
std::string text_of(const json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The lines of a metrics log as JSON objects (none when the log is missing); FileError naming the line of one
// without an "event" string.
std::vector<json> metrics_events(const std::string& path) {
    std::vector<json> out;
    if (path.empty() || !exists(path)) return out;
    for (const std::string& line : read_metrics_lines(path)) {
        out.push_back(json::parse(line));
        if (text_of(out.back(), "event").empty())
            throw FileError(fmt::format("{}: line {} has no \"event\" string", path, out.size()));
    }
    return out;
}

// The training count of every token id.
std::vector<double> train_counts(const Corpus& c, std::size_t V) {
    std::vector<double> n(V, 0.0);
    for (std::int32_t id : c.train)
        if (id >= 0 && static_cast<std::size_t>(id) < V) n[static_cast<std::size_t>(id)] += 1;
    return n;
}

json card_json(const ReportRun& run, const std::vector<json>& events, const json* curves, std::vector<std::string>& notes) {
    const RNNLM& m = *run.model;
    json card = {{"checkpoint", run.checkpoint}, {"model", m.config.describe()}, {"parameters", m.parameter_count()}};
    if (run.options && run.options->is_object()) {
        json cfg = json::object();
        for (const auto& [k, v] : run.options->items()) {
            bool scalars = v.is_primitive();
            if (v.is_array()) {
                scalars = true;
                for (const json& e : v) scalars = scalars && e.is_primitive();
            }
            if (scalars) cfg[k] = v;
        }
        card["config"] = cfg;
    } else {
        card["config"] = {{"model", m.config.cell}, {"emsize", m.config.emsize}, {"nhid", m.config.nhid},
                          {"nlayers", m.config.nlayers}, {"dropout", m.config.dropout}, {"tied", m.config.tied},
                          {"vocab", m.config.vocab}};
    }
    const Corpus& c = *run.corpus;
    json data = {{"path", run.data_path},           {"level", run.level},
                 {"vocab_size", c.vocab.size()},    {"train_tokens", c.train.size()},
                 {"valid_tokens", c.valid.size()},  {"test_tokens", c.test.size()}};
    const std::string now_sum = sha256_files(corpus_files(run.data_path, run.level));
    std::vector<const json*> starts;
    const json* test = nullptr;
    for (const json& e : events) {
        if (text_of(e, "event") == "start") starts.push_back(&e);
        if (text_of(e, "event") == "test") test = &e;
    }
    if (!starts.empty()) {
        const json& first = *starts.front();
        if (!text_of(first, "command").empty()) card["command"] = text_of(first, "command");
        const std::string logged = text_of(first, "checksum");
        data["checksum"] = logged.empty() ? now_sum : logged;
        if (!logged.empty() && logged != now_sum)
            notes.push_back(fmt::format("The data read now ({}) is not the data the run was trained on: checksum {}, "
                                        "the run logged {}.", run.data_path, now_sum, logged));
        for (std::size_t i = 1; i < starts.size(); ++i)
            if (!text_of(*starts[i], "command").empty()) notes.push_back("Resumed: " + text_of(*starts[i], "command") + ".");
    } else {
        data["checksum"] = now_sum;
        if (!events.empty())
            notes.push_back("The metrics log has no start event (an older run): the command line is unknown and the "
                            "checksum is of the data as read now.");
    }
    card["data"] = data;
    if (curves && curves->contains("epochs") && !(*curves)["epochs"].empty()) {
        double best = HUGE_VAL;
        for (const json& e : (*curves)["epochs"])
            if (e.contains("val_ppl") && e["val_ppl"].is_number()) best = std::min(best, e["val_ppl"].get<double>());
        if (std::isfinite(best)) card["best_valid_ppl"] = best;
        card["epochs"] = (*curves)["epochs"].back()["epoch"];
    }
    if (test) {
        if ((*test).contains("ppl") && (*test)["ppl"].is_number()) card["test_ppl"] = (*test)["ppl"];
        for (const char* k : {"tokens_per_s", "wall_time_s"})
            if (test->contains(k) && (*test)[k].is_number()) card[k] = (*test)[k];
    }
    if (!card.contains("tokens_per_s") && curves && curves->contains("train")) {  // an older log: the intervals' mean
        double s = 0;
        std::size_t n = 0;
        for (const json& e : (*curves)["train"])
            if (e.contains("tokens_per_s") && e["tokens_per_s"].is_number()) s += e["tokens_per_s"].get<double>(), ++n;
        if (n) card["tokens_per_s"] = s / static_cast<double>(n);
    }
    return card;
}

// Sigmoid-like gates: probes of one value per unit (not state parts, not attention) whose every value lies in [0, 1].
json gate_saturation_json(const PassageTrace& tr, std::size_t T, std::size_t hidden) {
    json gates = json::array();
    for (const auto& s : tr.series) {
        if (s.state || s.name == kAttention || s.width != hidden) continue;
        const auto [lo, hi] = std::minmax_element(s.values.begin(), s.values.end());
        if (*lo < 0.0f || *hi > 1.0f) continue;
        const Saturation sat = saturation(s.values.data(), T, s.width, 0.1, 0.9);
        gates.push_back({{"layer", s.layer}, {"gate", s.name}, {"left", sat.left}, {"right", sat.right}});
    }
    if (gates.empty()) return nullptr;
    return {{"low", 0.1}, {"high", 0.9}, {"tokens", T}, {"gates", gates}};
}

// Bits per value that keep the units' matrices within `budget` bytes of base64 (8 when they fit, else 4).
int units_bits(const PassageTrace& tr, std::size_t T, std::size_t hidden, std::size_t budget) {
    std::size_t values = 0;
    for (const auto& s : tr.series)
        if (s.width == hidden && s.name != kAttention) values += T * s.width;
    return values * 4 / 3 <= budget ? 8 : 4;
}

json units_json(const PassageTrace& tr, const std::vector<std::string>& tokens, const std::string& level,
                const std::map<std::string, double>& counts, std::size_t hidden, int bits, std::vector<std::string>& notes) {
    const std::size_t T = tokens.size();
    std::map<std::size_t, json> layers;
    std::vector<ActivationView> views;
    for (const auto& s : tr.series) {
        if (s.name == kAttention) continue;
        if (s.width != hidden) {
            notes.push_back(fmt::format("Units: layer {} '{}' has {} values per step, not the layer's {} units; not shown.",
                                        s.layer, s.name, s.width, hidden));
            continue;
        }
        json& l = layers[s.layer];
        if (l.is_null()) l = {{"layer", s.layer}, {"size", hidden}, {"kinds", json::array()}};
        l["kinds"].push_back({{"name", s.name}, {"values", encode_matrix(s.values.data(), T, s.width, bits)}});
        views.push_back({s.layer, s.name, T, s.width, s.values.data()});
    }
    if (layers.empty()) return nullptr;
    const std::vector<TextProbe> probes = text_probes(tokens, level, &counts, "<eos>");
    json out = {{"layers", json::array()}, {"probes", json::array()}, {"top", units_top_json(rank_units(views, probes))}};
    for (auto& [_, l] : layers) out["layers"].push_back(std::move(l));
    for (const TextProbe& p : probes) out["probes"].push_back({{"name", p.name}, {"values", p.values}});
    return out;
}

json surprisal_json(const PassageTrace& tr, const Ids& ids, const Vocab& vocab, const std::vector<double>& counts,
                    const std::string& level, const std::vector<double>& by_position, std::size_t window) {
    const std::size_t T = ids.size();
    json loss = json::array(), top = json::array();
    for (std::size_t t = 0; t < T; ++t) {
        loss.push_back(number(tr.loss[t]));
        if (tr.top[t].empty()) {
            top.push_back(nullptr);
            continue;
        }
        json e = json::array();
        for (const auto& [id, p] : tr.top[t]) e.push_back(json::array({vocab.token(id), std::min(1.0, p)}));
        top.push_back(std::move(e));
    }
    // Buckets of training frequency, frequent first: decades of the corpus' counts at each level.
    struct Bucket {
        const char* label;
        double min;
        double sum = 0;
        std::size_t n = 0;
    };
    std::vector<Bucket> buckets = level == "char"
        ? std::vector<Bucket>{{"> 20k", 20000}, {"2k–20k", 2000}, {"200–2k", 200}, {"< 200", -1}}
        : std::vector<Bucket>{{"> 2k", 2000}, {"300–2k", 300}, {"50–300", 50}, {"5–50", 5}, {"< 5", -1}};
    for (std::size_t t = 0; t < T; ++t) {
        if (!std::isfinite(tr.loss[t])) continue;
        const double n = counts[static_cast<std::size_t>(ids[t])];
        for (Bucket& b : buckets)
            if (n > b.min) {
                b.sum += tr.loss[t];
                ++b.n;
                break;
            }
    }
    json freq = json::array();
    for (const Bucket& b : buckets)
        freq.push_back({{"label", b.label}, {"loss", b.n ? json(b.sum / static_cast<double>(b.n)) : json(nullptr)},
                        {"count", b.n}});
    json pos = json::array();
    for (double v : by_position) pos.push_back(number(v));
    return {{"loss", loss},
            {"top", top},
            {"by_frequency", freq},
            {"by_position", pos},
            {"position_description",
             fmt::format("validation windows of {} steps, the state reset at each: position k has k tokens of context",
                         window)}};
}

json embeddings_json(const RNNLM& model, const Vocab& vocab, const std::vector<double>& counts, const std::string& level) {
    const Array E = model.embedding_table();  // the adaptive input's vectors when tied to an adaptive softmax
    const std::size_t V = E.shape()[0], D = E.shape()[1];
    std::vector<std::size_t> ids;
    for (std::size_t i = 0; i < V; ++i) {
        const std::string& w = vocab.token(static_cast<std::int32_t>(i));
        if (level == "word" && (w == "<unk>" || w == "<eos>")) continue;
        ids.push_back(i);
    }
    std::stable_sort(ids.begin(), ids.end(), [&](std::size_t a, std::size_t b) { return counts[a] > counts[b]; });
    if (ids.size() < 3 || D < 2) return nullptr;
    const std::vector<std::size_t> shown(ids.begin(), ids.begin() + static_cast<long>(std::min<std::size_t>(300, ids.size())));
    const Projection p = pca_2d(E.data(), V, D, shown);
    json words = json::array(), count = json::array();
    for (std::size_t i : shown) {
        words.push_back(vocab.token(static_cast<std::int32_t>(i)));
        count.push_back(counts[i]);
    }
    // Neighbours among the 10,000 most frequent tokens (rare words barely move from their random start), for the 24
    // most frequent words (at word level, those with a letter or digit: not punctuation).
    const std::size_t pool = std::min<std::size_t>(10000, ids.size());
    std::vector<float> table(pool * D);
    for (std::size_t r = 0; r < pool; ++r) std::copy(E.data() + ids[r] * D, E.data() + (ids[r] + 1) * D, table.begin() + static_cast<long>(r * D));
    json neighbours = json::array();
    for (std::size_t r = 0; r < pool && neighbours.size() < 24; ++r) {
        const std::string& w = vocab.token(static_cast<std::int32_t>(ids[r]));
        if (level == "word" && std::none_of(w.begin(), w.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)); }))
            continue;
        json near = json::array();
        for (const auto& [row, cos] : nearest_rows(table.data(), pool, D, r, 8))
            near.push_back(json::array({vocab.token(static_cast<std::int32_t>(ids[row])), cos}));
        neighbours.push_back({{"word", w}, {"near", near}});
    }
    return {{"matrix", model.adaptive_input() ? std::string("adaptive input (decoder.head, decoder.tail.*)") : model.encoder.weight.name},
            {"points", {{"words", words}, {"x", p.x}, {"y", p.y}, {"count", count}}},
            {"explained", {p.explained[0], p.explained[1]}},
            {"neighbours", neighbours}};
}

json samples_json(RNNLM& model, const Vocab& vocab, const std::string& level, const ReportOptions& o) {
    std::string prompt = o.prompt;
    Ids prompt_ids;
    if (prompt.empty() && level == "word") {  // the default prompt, if this vocabulary can say it
        try {
            prompt_ids = encode_prompt("The", vocab, level);
            prompt = "The";
        } catch (const ConfigError&) {
        }
    } else if (!prompt.empty()) {
        prompt_ids = encode_prompt(prompt, vocab, level);  // an unknown token is the user's to fix: the error names it
    }
    const std::size_t n = o.sample_tokens ? o.sample_tokens : level == "char" ? 400 : 100;
    json items = json::array();
    for (double temperature : {0.5, 0.8, 1.0}) {
        Sampler s(model, vocab, level, o.seed, static_cast<float>(temperature), 0);
        s.feed(prompt_ids);
        items.push_back({{"temperature", temperature}, {"text", s.generate(n)}});
    }
    json out = {{"items", items}};
    if (!prompt.empty()) out["prompt"] = prompt;
    return out;
}

// Attention maps from the "attn" probe: at step t a (1 x K) row whose column j weighs the state after token t - K + j.
json attention_json(const PassageTrace& tr, std::size_t T, std::vector<std::string>& notes) {
    json maps = json::array();
    for (const auto& s : tr.series) {
        if (s.name != kAttention) continue;
        const std::size_t K = s.width, Q = std::min<std::size_t>(40, T);
        const auto [lo, hi] = std::minmax_element(s.values.begin(), s.values.end());
        if (*lo < 0.0f || *hi > 1.0f) {
            notes.push_back(fmt::format("Attention: layer {} probed '{}' with values in [{}, {}], not weights in [0, 1]; "
                                        "not shown.", s.layer, kAttention, *lo, *hi));
            continue;
        }
        const std::size_t q0 = std::min(T - Q, std::max<std::size_t>(K, T / 4));  // queries with a full past if possible
        const std::size_t k0 = q0 >= K ? q0 - K : 0, k1 = q0 + Q - 1;         // keys [k0, k1)
        if (k1 <= k0) continue;
        json queries = json::array(), keys = json::array(), weights = json::array();
        for (std::size_t k = k0; k < k1; ++k) keys.push_back(k);
        for (std::size_t q = q0; q < q0 + Q; ++q) {
            queries.push_back(q);
            json row = json::array();
            for (std::size_t key = k0; key < k1; ++key) {
                // column j of step q weighs step q - K + j
                if (key + K >= q + K || key + K < q) {
                    row.push_back(nullptr);
                    continue;
                }
                const std::size_t j = key + K - q;
                row.push_back(s.values[q * K + j]);
            }
            weights.push_back(std::move(row));
        }
        maps.push_back({{"name", fmt::format("layer {} · tokens {}–{}", s.layer, q0, q0 + Q - 1)},
                        {"queries", queries}, {"keys", keys}, {"weights", weights}});
    }
    if (maps.empty()) return nullptr;
    return {{"maps", maps},
            {"description", "The weights a cell gave to the states of its previous steps (its \"attn\" probe): each row is "
                            "the token being read, each column an earlier token whose state it weighed."}};
}

// Trains on the weights for `batches` batches with the run's settings, the tape profiling; puts the weights back.
json timing_json(RNNLM& model, const Corpus& corpus, const TrainOptions& t, const ReportOptions& o, TraceRecorder* trace,
                 std::uint32_t tid) {
    const Batched data = batchify(corpus.train, t.batch_size);
    if (data.steps < 2) return nullptr;
    StateDict saved;
    model.save_weights(saved);
    std::vector<Parameter*> params = model.parameters();
    model.zero_grad();
    std::unique_ptr<Optimizer> opt = make_optimizer(t.optimizer, params, t.lr, t.momentum, t.weight_decay);
    Tape tape;
    Rng rng(o.seed);
    Ctx c{tape, rng, true};
    RecurrentState hidden = model.zero_state(t.batch_size);
    Ids in, tg;
    double clip_s = 0, step_s = 0;
    std::size_t done = 0;
    tape.set_profiling(true);
    auto span = [&](const char* name) {
        if (trace) trace->begin(name, "train", tid);
    };
    auto close = [&] {
        if (trace) trace->end();
    };
    const double t0 = now();
    for (std::size_t i = 0; done < o.timing_batches && i + 1 < data.steps; i += t.bptt, ++done) {
        span("batch");
        get_batch(data, i, t.bptt, in, tg);
        tape.clear();
        span("forward");
        const LMFeatures f = model.features(c, in, t.batch_size, hidden);
        Var loss = model.loss(c, f.y, tg);
        if (f.penalty.tape) loss = loss + f.penalty;
        close();
        span("backward");
        tape.backward(loss);
        close();
        hidden.assign(f);
        span("clip");
        const double a = now();
        if (t.clip > 0) clip_grad_norm(params, t.clip);
        const double b = now();
        close();
        span("optimizer step");
        opt->step();
        opt->zero_grad();
        step_s += now() - b;
        clip_s += b - a;
        close();
        close();
    }
    const double seconds = now() - t0;
    tape.set_profiling(false);
    model.load_weights(saved, "report: the weights before timing");
    double on_tape = 0;
    for (const auto& [_, op] : tape.profile()) on_tape += op.forward_s + op.backward_s;
    json other = json::array({json{{"name", "gradient clipping"}, {"seconds", clip_s}},
                              json{{"name", fmt::format("{} step", opt->name())}, {"seconds", step_s}}});
    other.push_back({{"name", "data and the loop"}, {"seconds", std::max(0.0, seconds - on_tape - clip_s - step_s)}});
    json out = {{"seconds", seconds},
                {"batches", done},
                {"ops", timing_ops_json(tape.profile())},
                {"other", other},
                {"description", fmt::format("{} training batches of {} x {} tokens at the run's settings, timed by the tape's "
                                            "profiler (an op's forward time runs to the next op's start).",
                                            done, t.batch_size, t.bptt)}};
    if (!o.trace.empty()) out["trace_file"] = o.trace;
    return out;
}

// The settings the report's passes follow (windows, batches, clipping, optimiser) from a run's logged options; the
// defaults for what is missing or mistyped (an older checkpoint, a plain state dict).
TrainOptions settings_of(const json* options) {
    TrainOptions t;
    if (!options || !options->is_object()) return t;
    auto count = [&](const char* key, std::size_t& v) {
        const auto it = options->find(key);
        if (it != options->end() && it->is_number_integer() && it->get<long long>() > 0) v = it->get<std::size_t>();
    };
    auto real = [&](const char* key, double& v) {
        const auto it = options->find(key);
        if (it != options->end() && it->is_number() && std::isfinite(it->get<double>())) v = it->get<double>();
    };
    count("bptt", t.bptt);
    count("batch-size", t.batch_size);
    count("eval-batch-size", t.eval_batch_size);
    real("clip", t.clip);
    real("lr", t.lr);
    real("momentum", t.momentum);
    real("weight-decay", t.weight_decay);
    const auto it = options->find("optimizer");
    if (it != options->end() && it->is_string()) t.optimizer = it->get<std::string>();
    return t;
}

// A run's label: the cell by its usual name.
std::string run_label(const LMConfig& c) {
    const std::string cell = c.cell == "RNN_TANH" ? "tanh RNN" : c.cell == "RNN_RELU" ? "ReLU RNN" : c.cell;
    return fmt::format("{} {}x{}", cell, c.nlayers, c.nhid);
}

void say(const ReportOptions& o, std::ostream& log, const std::string& s) {
    if (o.quiet) return;
    fmt::print(log, "{}\n", s);
    log.flush();
}

}  // namespace

json report_run(const ReportRun& run, const ReportOptions& o, int bits, std::ostream& log, TraceRecorder* trace,
                std::uint32_t tid) {
    if (!run.model || !run.vocab || !run.corpus) throw ConfigError("report_run: the run needs a model, a vocabulary and data");
    RNNLM& model = *run.model;
    const Corpus& corpus = *run.corpus;
    const Vocab& vocab = *run.vocab;
    const TrainOptions t = settings_of(run.options);
    std::vector<std::string> notes;
    json out = {{"name", run.name}};
    auto timed = [&](const char* what, auto&& f) {
        const double a = now();
        f();
        say(o, log, fmt::format("  {:<16} {:6.1f} s", what, now() - a));
    };

    const std::vector<json> events = metrics_events(run.metrics_path);
    json curves;
    if (!events.empty()) {
        std::ifstream in(run.metrics_path);
        curves = curves_from_metrics(in, run.metrics_path);
        if (t.clip > 0) curves["clip"] = t.clip;
        out["curves"] = curves;
    } else {
        notes.push_back(fmt::format("No metrics log ({}): no training curves.", run.metrics_path));
    }

    // The passage: validation tokens [offset, offset + tokens).
    if (o.offset + 2 > corpus.valid.size())
        throw ConfigError(fmt::format("--offset {} leaves fewer than 2 tokens of the validation split ({} tokens)", o.offset,
                                      corpus.valid.size()));
    const std::size_t T = std::min(o.tokens, corpus.valid.size() - o.offset);
    const Ids ids(corpus.valid.begin() + static_cast<long>(o.offset), corpus.valid.begin() + static_cast<long>(o.offset + T));
    std::vector<std::string> tokens;
    for (std::int32_t id : ids) tokens.push_back(vocab.token(id));
    json passage = {{"level", run.level}, {"tokens", tokens}, {"source", "valid"}, {"offset", o.offset}};
    if (run.level == "word") passage["eos"] = "<eos>";
    out["passage"] = passage;

    const std::vector<double> counts = train_counts(corpus, vocab.size());
    std::map<std::string, double> by_token;
    for (std::size_t i = 0; i < counts.size(); ++i) by_token[vocab.token(static_cast<std::int32_t>(i))] = counts[i];

    PassageTrace tr;
    timed("passage", [&] { tr = trace_passage(model, ids, t.bptt, 5); });
    for (const std::string& s : tr.skipped) notes.push_back("Not recorded: " + s + ".");
    timed("units", [&] {
        const std::size_t H = model.rnn.hidden_size();
        const int b = bits ? bits : units_bits(tr, T, H, run.units_budget);
        json units = units_json(tr, tokens, run.level, by_token, H, b, notes);
        if (!units.is_null()) out["units"] = std::move(units);
        json gates = gate_saturation_json(tr, T, H);
        if (!gates.is_null()) out["gate_saturation"] = std::move(gates);
        json attention = attention_json(tr, T, notes);
        if (!attention.is_null()) out["attention"] = std::move(attention);
    });
    std::vector<double> by_position;
    timed("surprisal", [&] {
        by_position = loss_by_position(model, batchify(corpus.valid, t.eval_batch_size), t.bptt, o.position_tokens);
        out["surprisal"] = surprisal_json(tr, ids, vocab, counts, run.level, by_position, t.bptt);
    });
    tr.series.clear();
    timed("gradient flow", [&] {
        const auto [norms, used] = gradient_flow_norms(model, corpus.valid, t.bptt, o.windows);
        if (used == 0) return;
        json n = json::array();
        for (const auto& layer : norms) {
            json row = json::array();
            for (double v : layer) row.push_back(v > 0 ? number(v) : json(nullptr));
            n.push_back(std::move(row));
        }
        out["gradient_flow"] = {{"norms", n},
                                {"windows", used},
                                {"description", fmt::format("‖∂L/∂h_t‖ of each layer's h at step t of a {}-step window, L the "
                                                            "cross-entropy of the window's last prediction; mean over {} "
                                                            "consecutive validation windows, batch 1, no dropout.",
                                                            t.bptt, used)}};
    });
    timed("embeddings", [&] {
        json e = embeddings_json(model, vocab, counts, run.level);
        if (!e.is_null()) out["embeddings"] = std::move(e);
    });
    timed("samples", [&] { out["samples"] = samples_json(model, vocab, run.level, o); });
    if (o.timing_batches > 0)
        timed("timing", [&] {
            json timing = timing_json(model, corpus, t, o, trace, tid);
            if (!timing.is_null()) out["timing"] = std::move(timing);
        });
    json card = card_json(run, events, curves.is_null() ? nullptr : &curves, notes);
    if (!notes.empty()) card["notes"] = fmt::format("{}", fmt::join(notes, " "));
    out["card"] = card;
    return out;
}

namespace {

// Refuses an output that would lose something: a directory, a folder that cannot be written, an existing file that
// is not what this command writes (`mark` is text every such file starts with, within its first kilobyte).
void check_output(const std::string& path, const char* flag, const std::string& mark) {
    if (path.empty()) throw ConfigError(fmt::format("{} must name a file", flag));
    if (is_dir(path)) throw ConfigError(fmt::format("{} {} is a directory; name a file", flag, path));
    const std::size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw ConfigError(fmt::format("{} {}: cannot write into {}: {}", flag, path, dir, std::strerror(errno)));
    if (!exists(path)) return;
    std::ifstream in(path, std::ios::binary);
    std::string head(1024, '\0');
    in.read(&head[0], static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
    if (head.find(mark) == std::string::npos)
        throw ConfigError(fmt::format("{} {} exists and is not a file this command wrote: it would be overwritten. Name "
                                      "another file, or remove it", flag, path));
}

// The metrics log of a checkpoint, named the way the trainer names it (X.safetensors and X.resume.safetensors: X.metrics.jsonl).
std::string metrics_path_of(const std::string& checkpoint) {
    const std::string save = save_path_of_resume(checkpoint);
    return Checkpointer(save.empty() ? checkpoint : save).metrics_path();
}

}  // namespace

void make_report(const ReportOptions& o, const Registry& registry, std::ostream& log, json* doc_out) {
    if (o.bits != 0 && o.bits != 4 && o.bits != 8) throw ConfigError(fmt::format("--bits must be 4 or 8, got {}", o.bits));
    if (!o.level.empty() && o.level != "word" && o.level != "char")
        throw ConfigError(fmt::format("--level must be word or char, got '{}'", o.level));
    if (o.tokens < 2) throw ConfigError(fmt::format("--tokens must be at least 2, got {}", o.tokens));
    check_output(o.out, "--out", "<meta name=\"generator\" content=\"xtgrad\">");
    if (!o.trace.empty()) check_output(o.trace, "--trace", "\"traceEvents\"");
    if (o.threads > 0) set_blas_threads(static_cast<int>(o.threads));
    const double start = now();

    std::vector<std::string> paths = {o.checkpoint};
    paths.insert(paths.end(), o.compare.begin(), o.compare.end());
    std::map<std::pair<std::string, std::string>, std::unique_ptr<Corpus>> corpora;  // (path, level): each loaded once
    auto corpus_of = [&](const std::string& data, const std::string& level) -> const Corpus& {
        auto& c = corpora[{data, level}];
        if (!c) c = std::make_unique<Corpus>(load_corpus(data, level));
        return *c;
    };
    TraceRecorder recorder;
    std::map<std::uint32_t, std::string> threads;
    json runs = json::array();
    std::set<std::string> names;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const std::string& path = paths[i];
        const double t0 = now();
        LoadedModel m;
        try {
            m = load_model(path, registry, nullptr, "");
        } catch (const FileError&) {
            if (o.data.empty()) throw;  // a plain PyTorch state dict needs the data for its vocabulary: say so as eval does
            m = load_model(path, registry, &corpus_of(o.data, o.level.empty() ? "word" : o.level), "");
        }
        json options;
        if (m.sd.has_meta("options")) options = json::parse(m.sd.metadata.at("options"), nullptr, false);
        if (!options.is_object()) options = nullptr;
        const std::string metrics = metrics_path_of(path);
        // The data: --data, else the folder the run logged (if it is still there), else the usual place.
        std::string data = o.data;
        if (data.empty())
            for (const json& e : metrics_events(metrics))
                if (text_of(e, "event") == "start" && text_of(e, "level") == m.level && exists(text_of(e, "data"))) {
                    data = text_of(e, "data");
                    break;
                }
        if (data.empty() && options.is_object() && exists(text_of(options, "data"))) data = text_of(options, "data");
        data = find_data(data, m.level == "char" ? "tinyshakespeare" : "wikitext-2");
        const Corpus& corpus = corpus_of(data, m.level);
        if (!m.from_pytorch && m.vocab.tokens() != corpus.vocab.tokens())
            throw FileError(fmt::format("{}: its vocabulary ({} tokens, {} level) is not the one of {} ({} tokens): pass "
                                        "--data with the corpus it was trained on", path, m.vocab.size(), m.level, data,
                                        corpus.vocab.size()));
        std::string name = run_label(m.model->config);
        if (!names.insert(name).second) {
            const std::string file = path.substr(path.find_last_of('/') + 1);
            name += " (" + file.substr(0, file.find('.')) + ")";
            names.insert(name);
        }
        say(o, log, fmt::format("{}: {} | {} | data {} ({} level)", path, name, m.model->config.describe(), data, m.level));
        ReportRun run;
        run.name = name;
        run.checkpoint = path;
        run.model = m.model.get();
        run.vocab = &m.vocab;
        run.level = m.level;
        run.corpus = &corpus;
        run.data_path = data;
        run.metrics_path = metrics;
        run.options = options.is_object() ? &options : nullptr;
        run.units_budget = 7000000 / paths.size();
        const auto tid = static_cast<std::uint32_t>(i + 1);
        threads[tid] = name;
        runs.push_back(report_run(run, o, o.bits, log, o.trace.empty() ? nullptr : &recorder, tid));
        say(o, log, fmt::format("  {:<16} {:6.1f} s", "run", now() - t0));
    }
    std::vector<std::string> labels;
    for (const json& r : runs) labels.push_back(r["name"]);
    char created[64];
    const std::time_t wall = std::time(nullptr);
    std::strftime(created, sizeof created, "%Y-%m-%d %H:%M UTC", std::gmtime(&wall));
    json doc = {{"format", "xtgrad-report"},
                {"version", 1},
                {"title", o.title.empty() ? fmt::format("{}", fmt::join(labels, " vs ")) : o.title},
                {"created", created},
                {"generator", registry.program + " report"},
                {"runs", runs}};
    const std::string page = render_report(doc);
    write_file_atomic(o.out, page);
    if (!o.trace.empty())
        write_file_atomic(o.trace, chrome_trace(recorder.spans(), registry.program + " report", threads)
                                       .dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    say(o, log, fmt::format("wrote {} ({:.2f} MB){} in {:.1f} s", o.out, static_cast<double>(page.size()) / 1e6,
                            o.trace.empty() ? "" : " and " + o.trace, now() - start));
    if (page.size() > 10000000)
        say(o, log, fmt::format("note: the page is over 10 MB; --tokens {} or --bits 4 makes it smaller", o.tokens / 2));
    if (doc_out) *doc_out = std::move(doc);
}

void add_report_flags(CLI::App& cmd, ReportOptions& o) {
    cmd.add_option("--checkpoint", o.checkpoint, "the model file the report is about")->required();
    cmd.add_option("--compare", o.compare, "more model files, each drawn as a run of its own (repeatable)");
    cmd.add_option("--data", o.data, "corpus of every run (default: the one each run logged, else ../shared/data)");
    cmd.add_option("--level", o.level, "word or char, for a plain PyTorch state dict read with --data");
    cmd.add_option("--out", o.out, "the report page (one self-contained HTML file)")->capture_default_str();
    cmd.add_option("--trace", o.trace, "also write a Chrome trace-event file of the timed batches (chrome://tracing, Perfetto)");
    cmd.add_option("--title", o.title, "the page's title (default: the runs' names)");
    cmd.add_option("--prompt", o.prompt, "the samples' prompt (default: \"The\" at word level, a new line at char level)");
    cmd.add_option("--tokens", o.tokens, "passage length, from the validation split")->capture_default_str()
        ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 20));
    cmd.add_option("--offset", o.offset, "where the passage starts in the validation split")->capture_default_str();
    cmd.add_option("--windows", o.windows, "validation windows averaged for the gradient flow")->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd.add_option("--position-tokens,--position_tokens", o.position_tokens,
                   "validation tokens averaged for the loss by window position")->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
    cmd.add_option("--timing-batches,--timing_batches", o.timing_batches, "training batches timed (0: no timing)")
        ->capture_default_str()->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
    cmd.add_option("--sample-tokens,--sample_tokens", o.sample_tokens,
                   "tokens per sample (0: 100 words or 400 characters)")->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
    cmd.add_option("--seed", o.seed, "random seed of the samples and the timed batches' dropout")->capture_default_str();
    cmd.add_option("--threads", o.threads, "BLAS threads (0: OpenBLAS's default)")->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{256}));
    cmd.add_option("--bits", o.bits, "bits per activation value in the page, 8 or 4 (0: 8 when the page stays small)")
        ->capture_default_str()->check(CLI::IsMember({0, 4, 8}));
    cmd.add_flag("--quiet", o.quiet, "no progress lines");
}

}  // namespace xtgrad
