#include <xtgrad/apps/lm/options.hpp>

#include <cmath>
#include <cstdlib>
#include <type_traits>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/json_read.hpp>

namespace xtgrad {

using nlohmann::json;

LMConfig TrainOptions::model_config() const {
    LMConfig c;
    c.cell = cell;
    c.emsize = emsize;
    c.nhid = nhid;
    c.nlayers = nlayers;
    c.dropout = dropout;
    c.tied = tied;
    if (adaptive_softmax) {
        c.cutoffs = cutoffs;
        c.div_value = div_value;
    }
    c.weight_drop = weight_drop;
    c.dropouti = dropouti;
    c.dropouth = dropouth;
    c.dropouto = dropouto;
    c.dropoute = dropoute;
    c.locked = locked_dropout;
    c.alpha = alpha;
    c.beta = beta;
    for (const std::string& kv : cell_options) {
        const std::size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
            throw ConfigError(fmt::format("--cell-option '{}' is not NAME=VALUE", kv));
        c.cell_options.set(kv.substr(0, eq), kv.substr(eq + 1));
    }
    return c;
}

Precision parse_precision(const std::string& value) {
    if (value == "fp32") return Precision::fp32;
    if (value != "bf16") throw ConfigError(fmt::format("--precision must be fp32 or bf16, got '{}'", value));
    if (!bf16_native())
        throw ConfigError(fmt::format(
            "--precision bf16: the matrix products would not run on bf16 instructions here ({}); it would be slower "
            "than fp32: use --precision fp32",
            onednn_built() ? "oneDNN sees neither AVX512_BF16 nor AMX: the CPU, or ONEDNN_MAX_CPU_ISA"
                           : "xtgrad was built without oneDNN (libdnnl-dev)"));
    return Precision::bf16;
}

double TrainOptions::time_budget_seconds() const {
    if (time_budget.empty()) return 0.0;
    char* end = nullptr;
    const double v = std::strtod(time_budget.c_str(), &end);
    const std::string unit = end;
    const double scale = unit.empty() || unit == "s" ? 1.0 : unit == "m" ? 60.0 : unit == "h" ? 3600.0 : -1.0;
    if (end == time_budget.c_str() || scale < 0 || !(v > 0) || !std::isfinite(v) || v * scale > 1e8)
        throw ConfigError(fmt::format("--time-budget '{}' is not a duration like 3600, 3600s, 60m or 1h", time_budget));
    return v * scale;
}

namespace {

struct ToJson {
    json& j;
    template <class T>
    void operator()(const Field& f, const T& v) {
        j[f.name] = v;
    }
};

struct FromJson {
    const json& j;
    const std::string& ctx;

    [[noreturn]] void fail(const Field& f, const std::string& what) const {
        throw FileError(fmt::format("{}: recorded option '{}' {}", ctx, f.name, what));
    }
    template <class T>
    void operator()(const Field& f, T& v) {
        auto it = j.find(f.name);
        if (it == j.end()) fail(f, "is missing");
        try {
            if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
                if (!it->is_number()) fail(f, "is not a number");
                if (std::is_integral_v<T> && !it->is_number_unsigned()) fail(f, fmt::format("= {} is not a whole number", it->dump()));
                const double d = it->get<double>();
                if (d < f.lo || d > f.hi || (f.lo_open && d == f.lo))
                    fail(f, fmt::format("= {} is outside {}{}, {}]", d, f.lo_open ? "(" : "[", f.lo, f.hi));
            } else if constexpr (std::is_same_v<T, std::vector<std::size_t>>) {
                if (!it->is_array()) fail(f, "is not a list");
                for (const json& e : *it)
                    if (!e.is_number_unsigned() || e.get<double>() < f.lo || e.get<double>() > f.hi)
                        fail(f, fmt::format("item {} is not a whole number in [{}, {}]", e.dump(), f.lo, f.hi));
            }
            v = it->get<T>();
        } catch (const json::exception& e) {
            fail(f, fmt::format("has the wrong type ({})", e.what()));
        }
    }
};

}  // namespace

std::string train_options_to_json(const TrainOptions& o) {
    json j = json::object();
    visit_train_options(o, ToJson{j});
    return j.dump();
}

TrainOptions train_options_from_json(const std::string& text, const std::string& ctx) {
    // a flat object of numbers, strings, booleans and short lists (--cutoffs, --cell-option)
    const json j = parse_json(text, {2, 1u << 12}, fmt::format("{}: the recorded options", ctx));
    if (!j.is_object()) throw FileError(fmt::format("{}: the recorded options are not a JSON object", ctx));
    TrainOptions o;
    visit_train_options(o, FromJson{j, ctx});
    return o;
}

const std::vector<Recipe>& recipes() {
    static const std::vector<Recipe> all = {
        {"pytorch-small", "the PyTorch word-language-model example's defaults: LSTM 2x200, SGD lr 20, 40 epochs", "{}"},
        {"pytorch-small-tied", "the same with the decoder tied to the embedding (test ppl 100.3 in 40 epochs there)",
         R"({"tied": true})"},
        {"pytorch-medium", "the example's medium model: LSTM 2x650, dropout 0.5, tied (86.7 in 40 epochs there)",
         R"({"emsize": 650, "nhid": 650, "dropout": 0.5, "tied": true})"},
        {"wt2-1h", "WikiText-2 in one hour on 2 cores: tied adaptive softmax and input, cosine over --time-budget 60m (test ppl 103.3 here, 74.9 with the cache)",
         R"({"tied": true, "adaptive-softmax": true, "time-budget": "60m", "lr-schedule": "cosine"})"},
    };
    return all;
}

TrainOptions apply_recipe(const TrainOptions& o, const std::string& name, const std::set<std::string>& given) {
    const Recipe* r = nullptr;
    std::vector<std::string> names;
    for (const Recipe& k : recipes()) {
        names.push_back(k.name);
        if (name == k.name) r = &k;
    }
    if (!r) throw ConfigError(fmt::format("--recipe '{}' is not a recipe (recipes: {})", name, fmt::join(names, ", ")));
    json j = json::object();
    visit_train_options(o, ToJson{j});
    const json settings = json::parse(r->settings);
    for (const auto& [key, value] : settings.items()) {
        if (!j.contains(key)) throw Error(fmt::format("recipe {}: unknown setting '{}'", name, key));  // a bug of ours
        if (!given.count(key)) j[key] = value;
    }
    j["recipe"] = name;
    return train_options_from_json(j.dump(), fmt::format("--recipe {}", name));
}

TrainOptions merge_resume_options(const TrainOptions& saved, const TrainOptions& now, const std::set<std::string>& given) {
    json js = json::object(), jn = json::object();
    visit_train_options(saved, ToJson{js});
    visit_train_options(now, ToJson{jn});
    std::vector<std::string> conflicts;
    TrainOptions merged = saved;
    visit_train_options(merged, [&](const Field& f, auto& member) {
        if (f.kind == FieldKind::invocation || (f.kind == FieldKind::session && given.count(f.name))) {
            member = jn[f.name].get<std::remove_reference_t<decltype(member)>>();
        } else if (f.kind == FieldKind::setting && given.count(f.name) && js[f.name] != jn[f.name]) {
            conflicts.push_back(fmt::format("--{} {} (the run has {})", f.name, jn[f.name].dump(), js[f.name].dump()));
        }
    });
    if (!conflicts.empty())
        throw ConfigError(fmt::format("--resume {}: these settings differ from the run's and a resumed run cannot "
                                      "change them: {}", now.resume, fmt::join(conflicts, "; ")));
    return merged;
}

}  // namespace xtgrad
