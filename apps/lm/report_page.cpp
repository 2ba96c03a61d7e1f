#include <xtgrad/apps/lm/report_page.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <istream>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace xtgrad {

// The page's script and style (apps/lm/report/*.js, *.css), embedded at build time by scripts/embed_assets.py.
namespace report_assets {
extern const char* const boot_js;
extern const char* const report_js;
extern const char* const report_css;
}  // namespace report_assets

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& path, const std::string& what) {
    throw ReportError(fmt::format("report document: {}: {}", path, what));
}

std::string at(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string at(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

// ---------------------------------------------------------------------------------------------------------------
// Schema checks. Each function checks one value at `path`; members are checked by name, unknown members rejected.

void is_object(const json& j, const std::string& path) {
    if (!j.is_object()) bad(path, fmt::format("expected an object, got {}", j.type_name()));
}

void is_array(const json& j, const std::string& path, std::size_t min_size = 0) {
    if (!j.is_array()) bad(path, fmt::format("expected an array, got {}", j.type_name()));
    if (j.size() < min_size) bad(path, fmt::format("expected at least {} entries, got {}", min_size, j.size()));
}

void is_string(const json& j, const std::string& path) {
    if (!j.is_string()) bad(path, fmt::format("expected a string, got {}", j.type_name()));
}

// A number (or null when allowed) within [lo, hi].
void is_number(const json& j, const std::string& path, bool null_ok = false, double lo = -HUGE_VAL, double hi = HUGE_VAL) {
    if (null_ok && j.is_null()) return;
    if (!j.is_number()) bad(path, fmt::format("expected a number{}, got {}", null_ok ? " or null" : "", j.type_name()));
    const double v = j.get<double>();
    if (v < lo || v > hi) bad(path, fmt::format("{} is outside [{}, {}]", v, lo, hi));
}

// A non-negative integer, returned.
std::size_t is_count(const json& j, const std::string& path, std::size_t min = 0) {
    if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<long long>() >= 0))
        bad(path, fmt::format("expected a non-negative integer, got {}", j.is_number() ? j.dump() : j.type_name()));
    const auto v = j.get<std::size_t>();
    if (v < min) bad(path, fmt::format("expected at least {}, got {}", min, v));
    return v;
}

// An array of numbers, of length `size` unless it is npos.
void is_numbers(const json& j, const std::string& path, std::size_t size = std::string::npos, bool null_ok = false,
                double lo = -HUGE_VAL, double hi = HUGE_VAL) {
    is_array(j, path);
    if (size != std::string::npos && j.size() != size)
        bad(path, fmt::format("expected {} numbers, got {}", size, j.size()));
    for (std::size_t i = 0; i < j.size(); ++i) is_number(j[i], at(path, i), null_ok, lo, hi);
}

// Rejects members not in `allowed`, and requires those in `required`.
void members(const json& j, const std::string& path, std::initializer_list<const char*> allowed,
             std::initializer_list<const char*> required = {}) {
    is_object(j, path);
    for (const auto& item : j.items()) {
        bool known = false;
        for (const char* a : allowed) known = known || item.key() == a;
        if (!known) {
            std::string list;
            for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            bad(at(path, item.key()), fmt::format("unknown field (expected one of: {})", list));
        }
    }
    for (const char* r : required)
        if (!j.contains(r)) bad(at(path, r), "missing");
}

const json* member(const json& j, const char* key) {
    const auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

void opt_string(const json& j, const char* key, const std::string& path) {
    if (const json* m = member(j, key)) is_string(*m, at(path, key));
}
void opt_number(const json& j, const char* key, const std::string& path, double lo = -HUGE_VAL, double hi = HUGE_VAL) {
    if (const json* m = member(j, key)) is_number(*m, at(path, key), true, lo, hi);
}
void opt_count(const json& j, const char* key, const std::string& path) {
    if (const json* m = member(j, key)) is_count(*m, at(path, key));
}

void check_card(const json& c, const std::string& p) {
    members(c, p, {"checkpoint", "model", "command", "config", "parameters", "data", "best_valid_ppl", "test_ppl",
                   "tokens_per_s", "wall_time_s", "epochs", "notes"});
    for (const char* k : {"checkpoint", "model", "command", "notes"}) opt_string(c, k, p);
    for (const char* k : {"parameters", "best_valid_ppl", "test_ppl", "tokens_per_s", "wall_time_s", "epochs"})
        opt_number(c, k, p, 0.0);
    if (const json* cfg = member(c, "config")) {
        is_object(*cfg, at(p, "config"));
        for (const auto& item : cfg->items()) {
            const json& v = item.value();
            const bool scalar = v.is_primitive();
            bool scalars = v.is_array();
            if (scalars)
                for (const json& e : v) scalars = scalars && e.is_primitive();
            if (!scalar && !scalars) bad(at(at(p, "config"), item.key()), "expected a string, number, boolean or an array of them");
        }
    }
    if (const json* d = member(c, "data")) {
        const std::string dp = at(p, "data");
        members(*d, dp, {"path", "level", "checksum", "vocab_size", "train_tokens", "valid_tokens", "test_tokens"});
        for (const char* k : {"path", "level", "checksum"}) opt_string(*d, k, dp);
        for (const char* k : {"vocab_size", "train_tokens", "valid_tokens", "test_tokens"}) opt_count(*d, k, dp);
    }
}

void check_curves(const json& c, const std::string& p) {
    members(c, p, {"train", "epochs", "test", "clip"});
    opt_number(c, "clip", p, 0.0);
    if (const json* tr = member(c, "train")) {
        const std::string tp = at(p, "train");
        is_array(*tr, tp);
        for (std::size_t i = 0; i < tr->size(); ++i) {
            const json& e = (*tr)[i];
            const std::string ep = at(tp, i);
            members(e, ep, {"event", "epoch", "batch", "batches", "loss", "ppl", "lr", "grad_norm", "clip_fraction",
                            "tokens_per_s", "ms_per_batch"},
                    {"epoch", "batch", "batches"});
            opt_string(e, "event", ep);
            is_count(e["epoch"], at(ep, "epoch"), 1);
            const std::size_t batches = is_count(e["batches"], at(ep, "batches"), 1);
            const std::size_t batch = is_count(e["batch"], at(ep, "batch"));
            if (batch > batches) bad(at(ep, "batch"), fmt::format("batch {} is past the epoch's {} batches", batch, batches));
            for (const char* k : {"loss", "ppl", "lr", "grad_norm", "tokens_per_s", "ms_per_batch"}) opt_number(e, k, ep);
            opt_number(e, "clip_fraction", ep, 0.0, 1.0);
        }
    }
    if (const json* ep = member(c, "epochs")) {
        const std::string pp = at(p, "epochs");
        is_array(*ep, pp);
        for (std::size_t i = 0; i < ep->size(); ++i) {
            const json& e = (*ep)[i];
            const std::string q = at(pp, i);
            members(e, q, {"event", "epoch", "val_loss", "val_ppl", "lr", "time_s"}, {"epoch"});
            opt_string(e, "event", q);
            is_count(e["epoch"], at(q, "epoch"), 1);
            for (const char* k : {"val_loss", "val_ppl", "lr", "time_s"}) opt_number(e, k, q);
        }
    }
    if (const json* t = member(c, "test")) {
        const std::string q = at(p, "test");
        members(*t, q, {"event", "split", "loss", "ppl", "best_val_loss"});
        opt_string(*t, "event", q);
        opt_string(*t, "split", q);
        for (const char* k : {"loss", "ppl", "best_val_loss"}) opt_number(*t, k, q);
    }
}

void check_gradient_flow(const json& g, const std::string& p) {
    members(g, p, {"norms", "description", "windows"}, {"norms"});
    opt_string(g, "description", p);
    opt_count(g, "windows", p);
    const json& n = g["norms"];
    is_array(n, at(p, "norms"), 1);
    for (std::size_t l = 0; l < n.size(); ++l) {
        is_array(n[l], at(at(p, "norms"), l), 1);
        is_numbers(n[l], at(at(p, "norms"), l), std::string::npos, true, 0.0);
    }
}

void check_gate_saturation(const json& g, const std::string& p) {
    members(g, p, {"low", "high", "tokens", "gates"}, {"gates"});
    opt_number(g, "low", p, 0.0, 1.0);
    opt_number(g, "high", p, 0.0, 1.0);
    opt_count(g, "tokens", p);
    const std::string gp = at(p, "gates");
    is_array(g["gates"], gp, 1);
    for (std::size_t i = 0; i < g["gates"].size(); ++i) {
        const json& e = g["gates"][i];
        const std::string ep = at(gp, i);
        members(e, ep, {"layer", "gate", "left", "right"}, {"layer", "gate", "left", "right"});
        is_count(e["layer"], at(ep, "layer"));
        is_string(e["gate"], at(ep, "gate"));
        is_array(e["left"], at(ep, "left"), 1);
        is_numbers(e["left"], at(ep, "left"), std::string::npos, false, 0.0, 1.0);
        is_numbers(e["right"], at(ep, "right"), e["left"].size(), false, 0.0, 1.0);
    }
}

// Returns the passage length.
std::size_t check_passage(const json& g, const std::string& p) {
    members(g, p, {"level", "tokens", "source", "offset", "eos"}, {"level", "tokens"});
    is_string(g["level"], at(p, "level"));
    const std::string level = g["level"];
    if (level != "word" && level != "char") bad(at(p, "level"), fmt::format("'{}' is neither \"word\" nor \"char\"", level));
    const std::string tp = at(p, "tokens");
    is_array(g["tokens"], tp, 1);
    for (std::size_t i = 0; i < g["tokens"].size(); ++i) is_string(g["tokens"][i], at(tp, i));
    opt_string(g, "source", p);
    opt_string(g, "eos", p);
    opt_count(g, "offset", p);
    return g["tokens"].size();
}

std::size_t matrix_bytes(std::size_t rows, std::size_t cols, int bits) { return (rows * cols * bits + 7) / 8; }

// A "matrix" object; returns its column count.
std::size_t check_matrix(const json& m, const std::string& p, std::size_t rows) {
    members(m, p, {"encoding", "rows", "cols", "min", "max", "data"}, {"encoding", "rows", "cols", "min", "max", "data"});
    is_string(m["encoding"], at(p, "encoding"));
    const std::string enc = m["encoding"];
    if (enc != "u8" && enc != "u4") bad(at(p, "encoding"), fmt::format("'{}' is neither \"u8\" nor \"u4\"", enc));
    const std::size_t r = is_count(m["rows"], at(p, "rows"), 1), c = is_count(m["cols"], at(p, "cols"), 1);
    if (rows != std::string::npos && r != rows)
        bad(at(p, "rows"), fmt::format("{} rows, but the passage has {} tokens", r, rows));
    is_numbers(m["min"], at(p, "min"), c);
    is_numbers(m["max"], at(p, "max"), c);
    for (std::size_t k = 0; k < c; ++k)
        if (m["min"][k].get<double>() > m["max"][k].get<double>()) bad(at(at(p, "min"), k), "min is above max");
    is_string(m["data"], at(p, "data"));
    std::size_t got = 0;
    try {
        got = base64_decode(m["data"].get_ref<const std::string&>()).size();
    } catch (const ReportError& e) {
        bad(at(p, "data"), e.what());
    }
    const std::size_t want = matrix_bytes(r, c, enc == "u8" ? 8 : 4);
    if (got != want) bad(at(p, "data"), fmt::format("{} bytes for {} x {} {} values, expected {}", got, r, c, enc, want));
    return c;
}

void check_units(const json& u, const std::string& p, std::size_t T) {
    members(u, p, {"layers", "probes", "top"}, {"layers"});
    const std::string lp = at(p, "layers");
    is_array(u["layers"], lp, 1);
    std::map<std::pair<std::size_t, std::string>, std::size_t> sizes;  // (layer, kind) -> units
    for (std::size_t i = 0; i < u["layers"].size(); ++i) {
        const json& l = u["layers"][i];
        const std::string ip = at(lp, i);
        members(l, ip, {"layer", "size", "kinds"}, {"layer", "size", "kinds"});
        const std::size_t layer = is_count(l["layer"], at(ip, "layer"));
        const std::size_t size = is_count(l["size"], at(ip, "size"), 1);
        const std::string kp = at(ip, "kinds");
        is_array(l["kinds"], kp, 1);
        for (std::size_t k = 0; k < l["kinds"].size(); ++k) {
            const json& kind = l["kinds"][k];
            const std::string q = at(kp, k);
            members(kind, q, {"name", "values"}, {"name", "values"});
            is_string(kind["name"], at(q, "name"));
            const std::size_t cols = check_matrix(kind["values"], at(q, "values"), T);
            if (cols != size) bad(at(at(q, "values"), "cols"), fmt::format("{} columns, but the layer has {} units", cols, size));
            if (!sizes.emplace(std::make_pair(layer, kind["name"].get<std::string>()), size).second)
                bad(at(q, "name"), fmt::format("layer {} has kind '{}' twice", layer, kind["name"].get<std::string>()));
        }
    }
    std::set<std::string> probe_names;
    if (const json* pr = member(u, "probes")) {
        const std::string pp = at(p, "probes");
        is_array(*pr, pp);
        for (std::size_t i = 0; i < pr->size(); ++i) {
            const json& e = (*pr)[i];
            members(e, at(pp, i), {"name", "values"}, {"name", "values"});
            is_string(e["name"], at(at(pp, i), "name"));
            is_numbers(e["values"], at(at(pp, i), "values"), T, true);
            probe_names.insert(e["name"].get<std::string>());
        }
    }
    if (const json* top = member(u, "top")) {
        const std::string tp = at(p, "top");
        is_array(*top, tp);
        for (std::size_t i = 0; i < top->size(); ++i) {
            const json& e = (*top)[i];
            const std::string q = at(tp, i);
            members(e, q, {"probe", "layer", "kind", "unit", "r"}, {"probe", "layer", "kind", "unit", "r"});
            is_string(e["probe"], at(q, "probe"));
            is_string(e["kind"], at(q, "kind"));
            is_number(e["r"], at(q, "r"), false, -1.0, 1.0);
            const std::size_t layer = is_count(e["layer"], at(q, "layer")), unit = is_count(e["unit"], at(q, "unit"));
            const auto it = sizes.find({layer, e["kind"].get<std::string>()});
            if (it == sizes.end())
                bad(q, fmt::format("layer {} kind '{}' is not among the recorded layers", layer, e["kind"].get<std::string>()));
            if (unit >= it->second) bad(at(q, "unit"), fmt::format("unit {} is out of range (layer has {})", unit, it->second));
        }
    }
}

void check_surprisal(const json& s, const std::string& p, std::size_t T) {
    members(s, p, {"loss", "top", "by_frequency", "by_position", "position_description"}, {"loss"});
    opt_string(s, "position_description", p);
    is_numbers(s["loss"], at(p, "loss"), T, true, 0.0);
    if (const json* top = member(s, "top")) {
        const std::string tp = at(p, "top");
        is_array(*top, tp);
        if (top->size() != T) bad(tp, fmt::format("expected {} entries (one per token), got {}", T, top->size()));
        for (std::size_t t = 0; t < T; ++t) {
            const json& e = (*top)[t];
            if (e.is_null()) continue;
            const std::string q = at(tp, t);
            is_array(e, q);
            if (e.size() > 10) bad(q, fmt::format("{} predictions, at most 10", e.size()));
            for (std::size_t k = 0; k < e.size(); ++k) {
                const std::string qk = at(q, k);
                if (!e[k].is_array() || e[k].size() != 2) bad(qk, "expected [token, probability]");
                is_string(e[k][0], at(qk, 0));
                is_number(e[k][1], at(qk, 1), false, 0.0, 1.0);
            }
        }
    }
    if (const json* b = member(s, "by_frequency")) {
        const std::string bp = at(p, "by_frequency");
        is_array(*b, bp);
        for (std::size_t i = 0; i < b->size(); ++i) {
            const std::string q = at(bp, i);
            members((*b)[i], q, {"label", "loss", "count"}, {"label", "loss"});
            is_string((*b)[i]["label"], at(q, "label"));
            is_number((*b)[i]["loss"], at(q, "loss"), true, 0.0);
            opt_count((*b)[i], "count", q);
        }
    }
    if (const json* b = member(s, "by_position")) is_numbers(*b, at(p, "by_position"), std::string::npos, true, 0.0);
}

void check_embeddings(const json& e, const std::string& p) {
    members(e, p, {"matrix", "points", "explained", "neighbours"});
    opt_string(e, "matrix", p);
    if (const json* pts = member(e, "points")) {
        const std::string pp = at(p, "points");
        members(*pts, pp, {"words", "x", "y", "count"}, {"words", "x", "y"});
        is_array((*pts)["words"], at(pp, "words"));
        const std::size_t n = (*pts)["words"].size();
        for (std::size_t i = 0; i < n; ++i) is_string((*pts)["words"][i], at(at(pp, "words"), i));
        is_numbers((*pts)["x"], at(pp, "x"), n);
        is_numbers((*pts)["y"], at(pp, "y"), n);
        if (const json* c = member(*pts, "count")) is_numbers(*c, at(pp, "count"), n, false, 0.0);
    }
    if (const json* x = member(e, "explained")) is_numbers(*x, at(p, "explained"), 2, false, 0.0, 1.0);
    if (const json* nb = member(e, "neighbours")) {
        const std::string np = at(p, "neighbours");
        is_array(*nb, np);
        for (std::size_t i = 0; i < nb->size(); ++i) {
            const std::string q = at(np, i);
            members((*nb)[i], q, {"word", "near"}, {"word", "near"});
            is_string((*nb)[i]["word"], at(q, "word"));
            const json& near = (*nb)[i]["near"];
            is_array(near, at(q, "near"));
            for (std::size_t k = 0; k < near.size(); ++k) {
                const std::string qk = at(at(q, "near"), k);
                if (!near[k].is_array() || near[k].size() != 2) bad(qk, "expected [word, cosine]");
                is_string(near[k][0], at(qk, 0));
                is_number(near[k][1], at(qk, 1), false, -1.0, 1.0);
            }
        }
    }
}

void check_samples(const json& s, const std::string& p) {
    members(s, p, {"prompt", "items"}, {"items"});
    opt_string(s, "prompt", p);
    const std::string ip = at(p, "items");
    is_array(s["items"], ip, 1);
    for (std::size_t i = 0; i < s["items"].size(); ++i) {
        const std::string q = at(ip, i);
        members(s["items"][i], q, {"temperature", "text"}, {"temperature", "text"});
        is_number(s["items"][i]["temperature"], at(q, "temperature"), false, 0.0);
        is_string(s["items"][i]["text"], at(q, "text"));
    }
}

void check_attention(const json& a, const std::string& p, std::size_t T) {
    members(a, p, {"maps", "description"}, {"maps"});
    opt_string(a, "description", p);
    const std::string mp = at(p, "maps");
    is_array(a["maps"], mp, 1);
    for (std::size_t i = 0; i < a["maps"].size(); ++i) {
        const json& m = a["maps"][i];
        const std::string q = at(mp, i);
        members(m, q, {"name", "queries", "keys", "weights"}, {"name", "queries", "keys", "weights"});
        is_string(m["name"], at(q, "name"));
        for (const char* k : {"queries", "keys"}) {
            is_array(m[k], at(q, k), 1);
            for (std::size_t j = 0; j < m[k].size(); ++j) {
                const std::size_t t = is_count(m[k][j], at(at(q, k), j));
                if (t >= T) bad(at(at(q, k), j), fmt::format("token {} is past the passage's {} tokens", t, T));
            }
        }
        const std::string wp = at(q, "weights");
        is_array(m["weights"], wp);
        if (m["weights"].size() != m["queries"].size())
            bad(wp, fmt::format("{} rows for {} queries", m["weights"].size(), m["queries"].size()));
        for (std::size_t r = 0; r < m["weights"].size(); ++r)
            is_numbers(m["weights"][r], at(wp, r), m["keys"].size(), true, 0.0, 1.0);
    }
}

void check_timing(const json& t, const std::string& p) {
    members(t, p, {"seconds", "batches", "ops", "other", "trace_file", "description"});
    opt_number(t, "seconds", p, 0.0);
    opt_count(t, "batches", p);
    opt_string(t, "trace_file", p);
    opt_string(t, "description", p);
    if (const json* ops = member(t, "ops")) {
        const std::string op = at(p, "ops");
        is_array(*ops, op);
        for (std::size_t i = 0; i < ops->size(); ++i) {
            const std::string q = at(op, i);
            members((*ops)[i], q, {"name", "forward_s", "backward_s", "calls"}, {"name"});
            is_string((*ops)[i]["name"], at(q, "name"));
            opt_number((*ops)[i], "forward_s", q, 0.0);
            opt_number((*ops)[i], "backward_s", q, 0.0);
            opt_count((*ops)[i], "calls", q);
        }
    }
    if (const json* other = member(t, "other")) {
        const std::string op = at(p, "other");
        is_array(*other, op);
        for (std::size_t i = 0; i < other->size(); ++i) {
            const std::string q = at(op, i);
            members((*other)[i], q, {"name", "seconds"}, {"name", "seconds"});
            is_string((*other)[i]["name"], at(q, "name"));
            is_number((*other)[i]["seconds"], at(q, "seconds"), false, 0.0);
        }
    }
}

void check_run(const json& r, const std::string& p) {
    members(r, p, {"name", "card", "curves", "gradient_flow", "gate_saturation", "passage", "units", "surprisal",
                   "embeddings", "samples", "attention", "timing"},
            {"name"});
    is_string(r["name"], at(p, "name"));
    if (r["name"].get_ref<const std::string&>().empty()) bad(at(p, "name"), "empty");
    if (const json* c = member(r, "card")) check_card(*c, at(p, "card"));
    if (const json* c = member(r, "curves")) check_curves(*c, at(p, "curves"));
    if (const json* c = member(r, "gradient_flow")) check_gradient_flow(*c, at(p, "gradient_flow"));
    if (const json* c = member(r, "gate_saturation")) check_gate_saturation(*c, at(p, "gate_saturation"));
    const json* passage = member(r, "passage");
    const std::size_t T = passage ? check_passage(*passage, at(p, "passage")) : 0;
    for (const char* needs : {"units", "surprisal", "attention"})
        if (r.contains(needs) && !passage) bad(at(p, needs), "needs the run's \"passage\" (its tokens), which is missing");
    if (const json* c = member(r, "units")) check_units(*c, at(p, "units"), T);
    if (const json* c = member(r, "surprisal")) check_surprisal(*c, at(p, "surprisal"), T);
    if (const json* c = member(r, "embeddings")) check_embeddings(*c, at(p, "embeddings"));
    if (const json* c = member(r, "samples")) check_samples(*c, at(p, "samples"));
    if (const json* c = member(r, "attention")) check_attention(*c, at(p, "attention"), T);
    if (const json* c = member(r, "timing")) check_timing(*c, at(p, "timing"));
}

// ---------------------------------------------------------------------------------------------------------------

// x rounded to `digits` significant digits, as the double nearest that decimal (so that it prints short).
double round_significant(double x, int digits) {
    if (x == 0.0 || !std::isfinite(x)) return x;
    const int e = static_cast<int>(std::floor(std::log10(std::fabs(x))));
    const int k = digits - 1 - e;  // decimals to keep
    if (k > 300 || k < -300) return x;
    if (k >= 0) {
        const double p = std::pow(10.0, k);
        const double m = std::round(x * p);
        if (std::fabs(m) > 9007199254740992.0) return x;
        return m / p;
    }
    const double p = std::pow(10.0, -k);
    return std::round(x / p) * p;
}

void round_numbers(json& j) {
    if (j.is_number_float()) {
        j = round_significant(j.get<double>(), 6);
    } else if (j.is_array() || j.is_object()) {
        for (auto& v : j) round_numbers(v);
    }
}

std::string html_escape(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char ch : s) {
        switch (ch) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += ch;
        }
    }
    return out;
}

// A metrics-log event cut to the fields the document has for it (a log may carry more, and logs of older runs named
// the clipping share "clipped").
void keep_known_fields(const std::string& event, json& e) {
    static const std::map<std::string, std::set<std::string>> known = {
        {"train", {"event", "epoch", "batch", "batches", "loss", "ppl", "lr", "grad_norm", "clip_fraction", "tokens_per_s",
                   "ms_per_batch"}},
        {"epoch", {"event", "epoch", "val_loss", "val_ppl", "lr", "time_s"}},
        {"test", {"event", "split", "loss", "ppl", "best_val_loss"}}};
    if (event == "train" && e.contains("clipped") && !e.contains("clip_fraction")) e["clip_fraction"] = e["clipped"];
    const std::set<std::string>& keep = known.at(event);
    for (auto it = e.begin(); it != e.end();) it = keep.count(it.key()) ? std::next(it) : e.erase(it);
}

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

void validate_report(const json& doc) {
    members(doc, "(document)", {"format", "version", "title", "created", "generator", "runs"}, {"format", "version", "runs"});
    if (!doc["format"].is_string() || doc["format"] != "xtgrad-report")
        bad("format", fmt::format("expected \"xtgrad-report\", got {}", doc["format"].dump()));
    if (!doc["version"].is_number_integer() || doc["version"] != 1)
        bad("version", fmt::format("expected 1 (the version this program draws), got {}", doc["version"].dump()));
    for (const char* k : {"title", "created", "generator"}) opt_string(doc, k, "");
    is_array(doc["runs"], "runs", 1);
    for (std::size_t i = 0; i < doc["runs"].size(); ++i) check_run(doc["runs"][i], at("runs", i));
}

std::string render_report(const json& doc) {
    validate_report(doc);
    json data = doc;
    round_numbers(data);
    const std::string text = data.dump(-1, ' ', false, json::error_handler_t::replace);
    // Inside <script>, "</script" or "<!--" would end or confuse the element: '<', '>' and '&' only occur in JSON
    // strings, where their \u escapes mean the same characters.
    std::string safe;
    safe.reserve(text.size() + text.size() / 64);
    for (char ch : text) {
        switch (ch) {
        case '<': safe += "\\u003c"; break;
        case '>': safe += "\\u003e"; break;
        case '&': safe += "\\u0026"; break;
        default: safe += ch;
        }
    }
    const std::string title = doc.contains("title") ? doc["title"].get<std::string>() : std::string("model report");
    std::string out;
    out.reserve(safe.size() + 200000);
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    // Nothing may be loaded from anywhere: the page is all inline.
    out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
           "style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'\">\n";
    out += "<meta name=\"generator\" content=\"xtgrad\">\n";
    out += "<title>" + html_escape(title) + " \xE2\x80\x94 xtgrad report</title>\n";
    out += "<link rel=\"icon\" href=\"data:,\">\n<style>\n";
    out += report_assets::report_css;
    out += "</style>\n<script>\n";
    out += report_assets::boot_js;
    out += "</script>\n</head>\n<body>\n";
    out += "<noscript><p class=\"noscript\">This report draws its charts with JavaScript; allow scripts for this file "
           "to see them.</p></noscript>\n<div id=\"app\"></div>\n";
    out += "<script type=\"application/json\" id=\"report-data\">";
    out += safe;
    out += "</script>\n<script>\n";
    out += report_assets::report_js;
    out += "</script>\n</body>\n</html>\n";
    return out;
}

void write_report(const std::string& path, const json& doc) {
    const std::string page = render_report(doc);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw FileError(fmt::format("{}: cannot write the report: {}", path, std::strerror(errno)));
    const bool ok = std::fwrite(page.data(), 1, page.size(), f) == page.size();
    if (std::fclose(f) != 0 || !ok) throw FileError(fmt::format("{}: cannot write the report (disk full?)", path));
}

std::string base64_encode(const std::uint8_t* data, std::size_t n) {
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (std::uint32_t(data[i + 1]) << 8) | data[i + 2];
        out += b64_alphabet[v >> 18];
        out += b64_alphabet[(v >> 12) & 63];
        out += b64_alphabet[(v >> 6) & 63];
        out += b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        const std::uint32_t v = std::uint32_t(data[i]) << 16;
        out += b64_alphabet[v >> 18];
        out += b64_alphabet[(v >> 12) & 63];
        out += "==";
    } else if (n - i == 2) {
        const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (std::uint32_t(data[i + 1]) << 8);
        out += b64_alphabet[v >> 18];
        out += b64_alphabet[(v >> 12) & 63];
        out += b64_alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

std::vector<std::uint8_t> base64_decode(const std::string& text) {
    if (text.size() % 4 != 0) throw ReportError(fmt::format("base64 text of {} characters is not a multiple of 4", text.size()));
    std::int8_t value[256];
    std::fill(std::begin(value), std::end(value), std::int8_t(-1));
    for (int k = 0; k < 64; ++k) value[static_cast<unsigned char>(b64_alphabet[k])] = static_cast<std::int8_t>(k);
    std::vector<std::uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        int pad = 0;
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const unsigned char ch = static_cast<unsigned char>(text[i + k]);
            if (ch == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
                ++pad;
                v <<= 6;
                continue;
            }
            if (value[ch] < 0 || pad > 0)
                throw ReportError(fmt::format("base64 text: bad character {} at offset {}", json(std::string(1, static_cast<char>(ch))).dump(
                                                  -1, ' ', false, json::error_handler_t::replace), i + k));
            v = (v << 6) | static_cast<std::uint32_t>(value[ch]);
        }
        out.push_back(static_cast<std::uint8_t>(v >> 16));
        if (pad < 2) out.push_back(static_cast<std::uint8_t>((v >> 8) & 255));
        if (pad < 1) out.push_back(static_cast<std::uint8_t>(v & 255));
    }
    return out;
}

json encode_matrix(const float* data, std::size_t rows, std::size_t cols, int bits) {
    if (bits != 8 && bits != 4) throw ReportError(fmt::format("encode_matrix: {} bits per value (8 or 4)", bits));
    if (rows == 0 || cols == 0) throw ReportError(fmt::format("encode_matrix: empty {} x {} matrix", rows, cols));
    const unsigned levels = (1u << bits) - 1;
    std::vector<double> lo(cols, HUGE_VAL), hi(cols, -HUGE_VAL);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
            const float v = data[r * cols + c];
            if (!std::isfinite(v)) throw ReportError(fmt::format("encode_matrix: value {} at row {}, column {}", v, r, c));
            lo[c] = std::min(lo[c], double(v));
            hi[c] = std::max(hi[c], double(v));
        }
    std::vector<std::uint8_t> bytes(matrix_bytes(rows, cols, bits), 0);
    for (std::size_t c = 0; c < cols; ++c) {
        const double span = hi[c] - lo[c];
        for (std::size_t r = 0; r < rows; ++r) {
            const double v = data[r * cols + c];
            const unsigned q = span > 0 ? static_cast<unsigned>(std::lround((v - lo[c]) / span * levels)) : 0u;
            const std::size_t k = c * rows + r;  // unit-major
            if (bits == 8)
                bytes[k] = static_cast<std::uint8_t>(q);
            else
                bytes[k / 2] |= static_cast<std::uint8_t>(k % 2 == 0 ? q << 4 : q);
        }
    }
    return {{"encoding", bits == 8 ? "u8" : "u4"}, {"rows", rows},     {"cols", cols},
            {"min", lo},                            {"max", hi},       {"data", base64_encode(bytes.data(), bytes.size())}};
}

std::vector<float> decode_matrix(const json& m) {
    const std::size_t cols = check_matrix(m, "matrix", std::string::npos);
    const std::size_t rows = m["rows"];
    const int bits = m["encoding"] == "u8" ? 8 : 4;
    const double levels = (1u << bits) - 1;
    const std::vector<std::uint8_t> bytes = base64_decode(m["data"].get<std::string>());
    std::vector<float> out(rows * cols);
    for (std::size_t c = 0; c < cols; ++c) {
        const double lo = m["min"][c], hi = m["max"][c];
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t k = c * rows + r;
            const unsigned q = bits == 8 ? bytes[k] : (k % 2 == 0 ? bytes[k / 2] >> 4 : bytes[k / 2] & 15u);
            out[r * cols + c] = static_cast<float>(lo + (hi - lo) * q / levels);
        }
    }
    return out;
}

json curves_from_metrics(std::istream& in, const std::string& path) {
    json train = json::array(), epochs = json::array(), test;
    std::string line;
    std::size_t number = 0;
    // A resumed run appends to the same log from its resume point: a later entry replaces those it goes back over.
    auto key_of = [](const json& e) {
        const double epoch = e.value("epoch", 0.0), batch = e.value("batch", 0.0);
        return epoch * 1e9 + batch;
    };
    while (std::getline(in, line)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json e;
        try {
            e = json::parse(line);
        } catch (const json::parse_error& err) {
            throw FileError(fmt::format("{}:{}: not a JSON line ({})", path, number, err.what()));
        }
        if (!e.is_object() || !e.contains("event") || !e["event"].is_string())
            throw FileError(fmt::format("{}:{}: expected an object with an \"event\" string", path, number));
        const std::string ev = e["event"];
        if (ev != "train" && ev != "epoch" && ev != "test") continue;
        keep_known_fields(ev, e);
        json* list = ev == "train" ? &train : ev == "epoch" ? &epochs : nullptr;
        if (ev == "test") test = e;
        if (!list) continue;
        static const std::vector<const char*> train_keys = {"epoch", "batch", "batches"}, epoch_keys = {"epoch"};
        for (const char* k : ev == "train" ? train_keys : epoch_keys)
            if (!e.contains(k) || !e[k].is_number_unsigned())
                throw FileError(fmt::format("{}:{}: \"{}\" event without a non-negative integer \"{}\"", path, number, ev, k));
        const double key = key_of(e);
        while (!list->empty() && key_of(list->back()) >= key) list->erase(list->end() - 1);
        list->push_back(std::move(e));
    }
    if (in.bad()) throw FileError(fmt::format("{}: read error", path));
    json out = {{"train", train}, {"epochs", epochs}};
    if (!test.is_null()) out["test"] = test;
    return out;
}

std::vector<TextProbe> text_probes(const std::vector<std::string>& tokens, const std::string& level,
                                   const std::map<std::string, double>* counts, const std::string& eos) {
    if (level != "word" && level != "char") throw ReportError(fmt::format("text_probes: level '{}' is neither word nor char", level));
    const std::string newline = level == "word" ? eos : "\n";
    const std::size_t T = tokens.size();
    TextProbe line{"position in line", std::vector<double>(T)}, quotes{"inside quotes", std::vector<double>(T)},
        brackets{"inside brackets", std::vector<double>(T)}, stop{"tokens since full stop", std::vector<double>(T)};
    double pos = 0, depth = 0, since = 0;
    bool quoted = false;
    for (std::size_t t = 0; t < T; ++t) {
        const std::string& w = tokens[t];
        line.values[t] = pos;
        pos += 1;
        if (w == "\"") quoted = !quoted;
        if (w == "(" || w == "[" || w == "{") depth += 1;
        if ((w == ")" || w == "]" || w == "}") && depth > 0) depth -= 1;
        since = (w == "." || w == "!" || w == "?") ? 0 : since + 1;
        if (w == newline) {
            pos = 0;
            quoted = false;
            depth = 0;
        }
        quotes.values[t] = quoted ? 1 : 0;
        brackets.values[t] = depth;
        stop.values[t] = since;
    }
    std::vector<TextProbe> out{line, quotes, brackets, stop};
    if (counts) {
        TextProbe freq{"word frequency (log)", std::vector<double>(T)};
        for (std::size_t t = 0; t < T; ++t) {
            const auto it = counts->find(tokens[t]);
            freq.values[t] = std::log1p(it == counts->end() ? 0.0 : std::max(0.0, it->second));
        }
        out.push_back(std::move(freq));
    }
    return out;
}

std::vector<UnitCorrelation> rank_units(const std::vector<ActivationView>& views, const std::vector<TextProbe>& probes,
                                        std::size_t top, std::size_t per_probe) {
    std::vector<UnitCorrelation> all;
    for (const TextProbe& p : probes) {
        const std::size_t T = p.values.size();
        double mean = 0;
        for (double v : p.values) mean += v;
        mean /= std::max<std::size_t>(T, 1);
        std::vector<double> z(T);
        double var = 0;
        for (std::size_t t = 0; t < T; ++t) {
            z[t] = p.values[t] - mean;
            var += z[t] * z[t];
        }
        if (T < 3 || var <= 1e-12 * T) continue;  // a constant probe says nothing
        for (const ActivationView& v : views) {
            if (v.rows != T)
                throw ReportError(fmt::format("rank_units: layer {} '{}' has {} rows, probe '{}' has {} values", v.layer,
                                              v.kind, v.rows, p.name, T));
            std::vector<double> sx(v.cols, 0.0), sxx(v.cols, 0.0), sxz(v.cols, 0.0);
            for (std::size_t t = 0; t < T; ++t) {
                const float* row = v.data + t * v.cols;
                for (std::size_t u = 0; u < v.cols; ++u) {
                    const double x = row[u];
                    sx[u] += x;
                    sxx[u] += x * x;
                    sxz[u] += x * z[t];
                }
            }
            for (std::size_t u = 0; u < v.cols; ++u) {
                const double vx = sxx[u] - sx[u] * sx[u] / T;  // sum of squared deviations
                if (vx <= 1e-12 * T) continue;
                const double r = sxz[u] / std::sqrt(vx * var);  // z sums to 0: sum (x - mx) z = sum x z
                if (std::isfinite(r)) all.push_back({p.name, v.layer, v.kind, u, std::clamp(r, -1.0, 1.0)});
            }
        }
    }
    std::stable_sort(all.begin(), all.end(), [](const UnitCorrelation& a, const UnitCorrelation& b) {
        return std::fabs(a.r) > std::fabs(b.r);
    });
    std::vector<UnitCorrelation> out;
    std::map<std::string, std::size_t> taken;
    std::set<std::pair<std::size_t, std::size_t>> used;  // (layer, unit): h, c and the gates of a unit are one cell
    for (const UnitCorrelation& c : all) {
        if (out.size() >= top) break;
        if (taken[c.probe] >= per_probe) continue;
        if (!used.insert({c.layer, c.unit}).second) continue;
        ++taken[c.probe];
        out.push_back(c);
    }
    return out;
}

json units_top_json(const std::vector<UnitCorrelation>& ranked) {
    json out = json::array();
    for (const UnitCorrelation& c : ranked)
        out.push_back({{"probe", c.probe}, {"layer", c.layer}, {"kind", c.kind}, {"unit", c.unit}, {"r", c.r}});
    return out;
}

Saturation saturation(const float* data, std::size_t rows, std::size_t cols, double low, double high) {
    Saturation s{std::vector<double>(cols, 0.0), std::vector<double>(cols, 0.0)};
    if (rows == 0) return s;
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
            const float v = data[r * cols + c];
            if (v < low) s.left[c] += 1;
            if (v > high) s.right[c] += 1;
        }
    for (std::size_t c = 0; c < cols; ++c) {
        s.left[c] /= static_cast<double>(rows);
        s.right[c] /= static_cast<double>(rows);
    }
    return s;
}

Projection pca_2d(const float* table, std::size_t n, std::size_t dim, const std::vector<std::size_t>& rows) {
    const std::size_t m = rows.size();
    if (m < 3) throw ReportError(fmt::format("pca_2d: {} rows, at least 3 needed", m));
    if (dim < 2) throw ReportError(fmt::format("pca_2d: {} dimensions, at least 2 needed", dim));
    for (std::size_t r : rows)
        if (r >= n) throw ReportError(fmt::format("pca_2d: row {} is out of range (table has {})", r, n));
    // Centred copy X (m x dim).
    std::vector<double> X(m * dim), mean(dim, 0.0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t d = 0; d < dim; ++d) mean[d] += table[rows[i] * dim + d];
    for (double& v : mean) v /= static_cast<double>(m);
    double total = 0;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t d = 0; d < dim; ++d) {
            const double v = table[rows[i] * dim + d] - mean[d];
            X[i * dim + d] = v;
            total += v * v;
        }
    // Subspace iteration on X^T X with two vectors, then the 2 x 2 eigenproblem inside the subspace.
    std::vector<double> V(2 * dim), W(2 * dim), Xv(m);
    for (std::size_t d = 0; d < dim; ++d) {
        V[d] = 1.0 + 0.01 * static_cast<double>(d % 7);
        V[dim + d] = (d % 2 == 0 ? 1.0 : -1.0) * (1.0 + 0.03 * static_cast<double>(d % 5));
    }
    auto apply = [&](const double* v, double* w) {  // w = X^T X v
        for (std::size_t i = 0; i < m; ++i) {
            double s = 0;
            for (std::size_t d = 0; d < dim; ++d) s += X[i * dim + d] * v[d];
            Xv[i] = s;
        }
        std::fill(w, w + dim, 0.0);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t d = 0; d < dim; ++d) w[d] += X[i * dim + d] * Xv[i];
    };
    auto orthonormalise = [&](std::vector<double>& A) {  // Gram-Schmidt on the two columns
        double n0 = 0;
        for (std::size_t d = 0; d < dim; ++d) n0 += A[d] * A[d];
        n0 = std::sqrt(n0);
        for (std::size_t d = 0; d < dim; ++d) A[d] = n0 > 0 ? A[d] / n0 : (d == 0 ? 1.0 : 0.0);
        double dot = 0;
        for (std::size_t d = 0; d < dim; ++d) dot += A[d] * A[dim + d];
        double n1 = 0;
        for (std::size_t d = 0; d < dim; ++d) {
            A[dim + d] -= dot * A[d];
            n1 += A[dim + d] * A[dim + d];
        }
        n1 = std::sqrt(n1);
        for (std::size_t d = 0; d < dim; ++d) A[dim + d] = n1 > 0 ? A[dim + d] / n1 : (d == 1 ? 1.0 : 0.0);
    };
    orthonormalise(V);
    for (int it = 0; it < 500; ++it) {
        apply(&V[0], &W[0]);
        apply(&V[dim], &W[dim]);
        orthonormalise(W);
        double change = 0;  // 2 - ||V^T W||_F^2: zero when the subspaces agree
        double f = 0;
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                double dot = 0;
                for (std::size_t d = 0; d < dim; ++d) dot += V[a * dim + d] * W[b * dim + d];
                f += dot * dot;
            }
        change = 2.0 - f;
        V.swap(W);
        if (change < 1e-14) break;
    }
    // Rayleigh-Ritz: B = V^T (X^T X) V, 2 x 2 symmetric.
    apply(&V[0], &W[0]);
    apply(&V[dim], &W[dim]);
    double b00 = 0, b01 = 0, b11 = 0;
    for (std::size_t d = 0; d < dim; ++d) {
        b00 += V[d] * W[d];
        b01 += V[d] * W[dim + d];
        b11 += V[dim + d] * W[dim + d];
    }
    const double tr = b00 + b11, det = b00 * b11 - b01 * b01;
    const double disc = std::sqrt(std::max(0.0, tr * tr / 4 - det));
    const double l1 = tr / 2 + disc, l2 = tr / 2 - disc;
    // Eigenvectors of B, expressed in the subspace.
    double e1[2], e2[2];
    if (std::fabs(b01) > 1e-300 * (std::fabs(b00) + std::fabs(b11) + 1)) {
        e1[0] = l1 - b11;
        e1[1] = b01;
    } else {
        e1[0] = b00 >= b11 ? 1 : 0;
        e1[1] = b00 >= b11 ? 0 : 1;
    }
    const double ne = std::hypot(e1[0], e1[1]);
    e1[0] /= ne;
    e1[1] /= ne;
    e2[0] = -e1[1];
    e2[1] = e1[0];
    std::vector<double> c1(dim), c2(dim);
    for (std::size_t d = 0; d < dim; ++d) {
        c1[d] = e1[0] * V[d] + e1[1] * V[dim + d];
        c2[d] = e2[0] * V[d] + e2[1] * V[dim + d];
    }
    // A fixed sign: the largest entry of each component is positive.
    for (std::vector<double>* c : {&c1, &c2}) {
        std::size_t best = 0;
        for (std::size_t d = 1; d < dim; ++d)
            if (std::fabs((*c)[d]) > std::fabs((*c)[best])) best = d;
        if ((*c)[best] < 0)
            for (double& v : *c) v = -v;
    }
    Projection p;
    p.x.resize(m);
    p.y.resize(m);
    for (std::size_t i = 0; i < m; ++i) {
        double a = 0, b = 0;
        for (std::size_t d = 0; d < dim; ++d) {
            a += X[i * dim + d] * c1[d];
            b += X[i * dim + d] * c2[d];
        }
        p.x[i] = a;
        p.y[i] = b;
    }
    p.explained[0] = total > 0 ? std::clamp(l1 / total, 0.0, 1.0) : 0.0;
    p.explained[1] = total > 0 ? std::clamp(l2 / total, 0.0, 1.0) : 0.0;
    return p;
}

std::vector<std::pair<std::size_t, double>> nearest_rows(const float* table, std::size_t n, std::size_t dim,
                                                         std::size_t row, std::size_t k) {
    if (row >= n) throw ReportError(fmt::format("nearest_rows: row {} is out of range (table has {})", row, n));
    std::vector<double> norm(n);
    for (std::size_t i = 0; i < n; ++i) {
        double s = 0;
        for (std::size_t d = 0; d < dim; ++d) s += double(table[i * dim + d]) * table[i * dim + d];
        norm[i] = std::sqrt(s);
    }
    std::vector<std::pair<std::size_t, double>> all;
    all.reserve(n);
    const float* q = table + row * dim;
    for (std::size_t i = 0; i < n; ++i) {
        if (i == row || norm[i] == 0 || norm[row] == 0) continue;
        double s = 0;
        for (std::size_t d = 0; d < dim; ++d) s += double(q[d]) * table[i * dim + d];
        all.emplace_back(i, std::clamp(s / (norm[i] * norm[row]), -1.0, 1.0));
    }
    const std::size_t keep = std::min(k, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep), all.end(),
                      [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
    all.resize(keep);
    return all;
}

json timing_ops_json(const std::map<std::string, OpTiming>& profile) {
    std::vector<std::pair<std::string, OpTiming>> ops(profile.begin(), profile.end());
    std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
        return a.second.forward_s + a.second.backward_s > b.second.forward_s + b.second.backward_s;
    });
    json out = json::array();
    for (const auto& [name, t] : ops)
        out.push_back({{"name", name}, {"forward_s", t.forward_s}, {"backward_s", t.backward_s}, {"calls", t.calls}});
    return out;
}

}  // namespace xtgrad
