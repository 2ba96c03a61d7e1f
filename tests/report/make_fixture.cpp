// Writes realistic synthetic report documents and their pages, for the browser test and for looking at the page:
//   report_fixture OUTDIR
//     compare.json / compare.html   WikiText-2-like word level, LSTM vs GRU vs tanh RNN (2 x 200), every section
//                                   but attention (none of these cells records it)
//     char.json / char.html         Tiny-Shakespeare-like character level, one LSTM 2 x 650 with an attention cell;
//                                   no gradient flow, no timing, no clipping statistics (absent-data paths)
//     minimal.json / minimal.html   one run with nothing recorded (every section absent)
//     trace.json                    a Chrome trace-event file of synthetic training spans
// The activations come from a small LSTM/GRU/RNN recurrence over random token inputs with a few units planted to
// follow the text (quotes, line position, brackets, sentence position, word frequency), so that the unit finder
// (rank_units) has something to find. Deterministic: fixed seeds.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <xtgrad/apps/lm/report_page.hpp>
#include <xtgrad/apps/lm/trace_events.hpp>

using nlohmann::json;
using namespace xtgrad;

namespace {

struct Rand {
    std::mt19937_64 g;
    explicit Rand(std::uint64_t seed) : g(seed) {}
    double uni() { return std::uniform_real_distribution<double>(0.0, 1.0)(g); }
    double normal() { return std::normal_distribution<double>(0.0, 1.0)(g); }
    std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(g); }
    // Zipf-like: index k with weight 1 / (k + 2).
    std::size_t zipf(std::size_t n) {
        double total = 0;
        for (std::size_t k = 0; k < n; ++k) total += 1.0 / double(k + 2);
        double u = uni() * total;
        for (std::size_t k = 0; k < n; ++k) {
            u -= 1.0 / double(k + 2);
            if (u <= 0) return k;
        }
        return n - 1;
    }
    template <class T> const T& pick(const std::vector<T>& v) { return v[zipf(v.size())]; }
};

// ---------------------------------------------------------------------------------------------------------------
// Text

const std::vector<std::string> kDet = {"the", "a", "his", "its", "their", "this", "an", "her"};
const std::vector<std::string> kAdj = {"first", "new", "second", "early", "large", "British", "original", "former", "main", "American",
                                       "final", "major", "national", "small", "young", "local", "famous", "northern"};
const std::vector<std::string> kNoun = {"game", "film", "season", "album", "song", "city", "team", "war", "series", "church", "river",
                                        "army", "station", "character", "episode", "road", "ship", "book", "family", "government",
                                        "village", "battle", "company", "storm", "record", "player", "court", "music", "story", "island"};
const std::vector<std::string> kVerb = {"was", "is", "became", "released", "played", "won", "began", "received", "included",
                                        "described", "wrote", "recorded", "returned", "moved", "built", "led", "joined", "reached"};
const std::vector<std::string> kPrep = {"of", "in", "to", "for", "with", "on", "at", "from", "by", "during", "after"};
const std::vector<std::string> kName = {"John", "London", "England", "Smith", "Washington", "Henry", "France", "Jackson", "Ireland",
                                        "Thomas", "Mary", "Australia"};
const std::vector<std::string> kNum = {"1998", "2010", "two", "three", "12", "1944", "first", "2006", "four", "100"};
const std::vector<std::string> kConj = {"and", "but", "which", "while", "as"};

void noun_phrase(Rand& r, std::vector<std::string>& out) {
    if (r.uni() < 0.18) {
        out.push_back(r.pick(kName));
        return;
    }
    out.push_back(r.pick(kDet));
    if (r.uni() < 0.45) {
        out.push_back(r.pick(kAdj));
        if (r.uni() < 0.12) {
            out.push_back("@-@");
            out.push_back(r.pick(kNoun));
        }
    }
    out.push_back(r.pick(kNoun));
}

void sentence(Rand& r, std::vector<std::string>& out) {
    noun_phrase(r, out);
    out.push_back(r.pick(kVerb));
    const int clauses = 1 + static_cast<int>(r.below(3));
    for (int c = 0; c < clauses; ++c) {
        const double u = r.uni();
        if (u < 0.16) {  // a quoted title
            out.push_back("\"");
            out.push_back(r.pick(kAdj));
            out.push_back(r.pick(kNoun));
            if (r.uni() < 0.5) {
                out.push_back(r.pick(kPrep));
                out.push_back(r.pick(kName));
            }
            out.push_back("\"");
        } else if (u < 0.28) {  // a parenthesis
            out.push_back("(");
            out.push_back(r.pick(kNum));
            if (r.uni() < 0.5) {
                out.push_back(r.pick(kConj));
                noun_phrase(r, out);
            }
            out.push_back(")");
        } else {
            out.push_back(r.pick(kPrep));
            noun_phrase(r, out);
        }
        if (c + 1 < clauses) out.push_back(r.uni() < 0.5 ? "," : r.pick(kConj));
    }
    out.push_back(".");
}

// WikiText-2-like: " = Title = " lines and paragraphs ending in <eos>.
std::vector<std::string> word_text(Rand& r, std::size_t n) {
    std::vector<std::string> out;
    while (out.size() < n) {
        if (r.uni() < 0.2) {
            for (const char* w : {"=", "="}) out.push_back(w);
            out.push_back(r.pick(kName));
            out.push_back(r.pick(kNoun));
            for (const char* w : {"=", "="}) out.push_back(w);
            out.push_back("<eos>");
        }
        const int sentences = 2 + static_cast<int>(r.below(4));
        for (int s = 0; s < sentences; ++s) sentence(r, out);
        out.push_back("<eos>");
    }
    out.resize(n);
    return out;
}

const std::vector<std::string> kSpeakers = {"ROMEO", "JULIET", "KING RICHARD II", "MENENIUS", "First Citizen", "GLOUCESTER", "DUKE VINCENTIO"};
const std::vector<std::string> kOld = {"the", "and", "to", "of", "my", "I", "you", "thou", "that", "a", "me", "thy", "is", "in", "not",
                                       "with", "be", "lord", "his", "your", "shall", "love", "king", "thee", "so", "what", "good",
                                       "now", "come", "will", "hath", "here", "sweet", "heart", "death", "night", "blood", "fair"};

// Tiny-Shakespeare-like: "NAME:\n" then short lines, a blank line between speeches; one code point per token.
std::vector<std::string> char_text(Rand& r, std::size_t n) {
    std::string text;
    while (text.size() < n) {
        text += r.pick(kSpeakers) + ":\n";
        const int lines = 1 + static_cast<int>(r.below(4));
        for (int l = 0; l < lines; ++l) {
            std::string line;
            const std::size_t len = 24 + r.below(30);
            bool first = true;
            while (line.size() < len) {
                std::string w = r.pick(kOld);
                if (first) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
                line += (first ? "" : " ") + w;
                first = false;
                if (r.uni() < 0.08) line += ",";
                if (r.uni() < 0.03) line += " (" + r.pick(kOld) + ")";
            }
            line += r.uni() < 0.5 ? "," : (r.uni() < 0.5 ? "." : (r.uni() < 0.5 ? "!" : "?"));
            text += line + "\n";
        }
        text += "\n";
    }
    text.resize(n);
    std::vector<std::string> out;
    for (char ch : text) out.emplace_back(1, ch);
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Activations

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// A value in [-1, 1) fixed by a token, a unit and a salt.
double token_weight(const std::string& tok, std::size_t unit, std::size_t salt) {
    std::uint64_t z = std::hash<std::string>{}(tok) ^ (unit * 0x9E3779B97F4A7C15ull) ^ (salt * 0xBF58476D1CE4E5B9ull);
    z ^= z >> 31;
    z *= 0x94D049BB133111EBull;
    z ^= z >> 29;
    return static_cast<double>(z % 2000001) / 1000000.0 - 1.0;
}

using Matrix = std::vector<float>;  // T x U row-major

struct Layer {
    std::map<std::string, Matrix> kinds;
};

// A recurrence of the named model over the passage, with planted units in the top layer that follow the probes.
std::vector<Layer> activations(const std::string& model, std::size_t layers, std::size_t U, const std::vector<std::string>& tokens,
                               const std::vector<TextProbe>& probes, double plant, std::uint64_t seed) {
    Rand r(seed);
    const std::size_t T = tokens.size();
    auto probe = [&](const char* name) -> const std::vector<double>& {
        for (const auto& p : probes)
            if (p.name == name) return p.values;
        static const std::vector<double> none;
        return none;
    };
    std::vector<Layer> out(layers);
    for (std::size_t l = 0; l < layers; ++l) {
        std::vector<double> bias_f(U), bias_i(U), bias_o(U), gain(U), phi(U);
        for (std::size_t u = 0; u < U; ++u) {
            bias_f[u] = 1.6 + 1.6 * r.normal();
            bias_i[u] = -0.4 + 1.4 * r.normal();
            bias_o[u] = 0.3 + 1.0 * r.normal();
            gain[u] = 1.5 + 4.0 * r.uni();
            phi[u] = 0.3 + 0.65 * r.uni();
        }
        auto input = [&](std::size_t t, std::size_t u, std::size_t salt) {
            return token_weight(tokens[t], u, salt + 7 * l) + 0.35 * r.normal();
        };
        const std::vector<std::string> kinds = model == "LSTM" ? std::vector<std::string>{"h", "c", "i", "f", "g", "o"}
                                               : model == "GRU" ? std::vector<std::string>{"h", "r", "z", "n"}
                                                                : std::vector<std::string>{"h"};
        for (const auto& k : kinds) out[l].kinds[k] = Matrix(T * U);
        std::vector<double> c(U, 0.0), h(U, 0.0), z(U, 0.0);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t u = 0; u < U; ++u) {
                z[u] = phi[u] * z[u] + (1 - phi[u]) * input(t, u, 1) * 2.0;
                const std::size_t k = t * U + u;
                if (model == "LSTM") {
                    const double i = sigm(bias_i[u] + gain[u] * z[u]), f = sigm(bias_f[u] + gain[u] * input(t, u, 2) * 0.8);
                    const double g = std::tanh(gain[u] * input(t, u, 3)), o = sigm(bias_o[u] + gain[u] * input(t, u, 4) * 0.6);
                    c[u] = f * c[u] + i * g;
                    h[u] = o * std::tanh(c[u]);
                    out[l].kinds["i"][k] = float(i);
                    out[l].kinds["f"][k] = float(f);
                    out[l].kinds["g"][k] = float(g);
                    out[l].kinds["o"][k] = float(o);
                } else if (model == "GRU") {
                    const double rr = sigm(bias_o[u] + gain[u] * input(t, u, 2) * 0.7), zz = sigm(bias_f[u] + gain[u] * z[u] * 0.8);
                    const double n = std::tanh(gain[u] * (input(t, u, 3) + rr * h[u] * 0.5));
                    h[u] = (1 - zz) * n + zz * h[u];
                    out[l].kinds["r"][k] = float(rr);
                    out[l].kinds["z"][k] = float(zz);
                    out[l].kinds["n"][k] = float(n);
                } else {
                    h[u] = std::tanh(0.6 * h[u] + gain[u] * z[u] * 0.5);
                }
            }
            // Planted units: the top layer follows the text (the strength `plant` differs by model).
            if (l + 1 == layers) {
                const std::vector<std::pair<const char*, std::size_t>> planted = {
                    {"inside quotes", 17 % U}, {"position in line", 42 % U}, {"inside brackets", 101 % U}, {"tokens since full stop", 150 % U}};
                for (const auto& [name, u] : planted) {
                    const auto& pv = probe(name);
                    if (pv.empty()) continue;
                    double target = 0;
                    if (std::string(name) == "inside quotes") target = 2.4 * pv[t] - 0.8;
                    if (std::string(name) == "position in line") target = -1.6 + 3.2 * std::min(1.0, pv[t] / (tokens.size() > 0 && tokens[0].size() == 1 ? 45.0 : 70.0));
                    if (std::string(name) == "inside brackets") target = 2.0 * pv[t] - 0.5;
                    if (std::string(name) == "tokens since full stop") target = 1.8 * std::tanh(pv[t] / 7.0) - 0.9;
                    c[u] = plant * target + (1 - plant) * c[u] + 0.15 * r.normal();
                    h[u] = std::tanh(c[u]) * (model == "LSTM" ? 0.9 : 1.0);
                }
            }
            if (l == 0) {
                const auto& freq = probe("word frequency (log)");
                if (!freq.empty()) {
                    const std::size_t u = 5 % U;
                    h[u] = std::tanh(plant * (0.45 * freq[t] - 2.0) + 0.2 * r.normal());
                }
            }
            for (std::size_t u = 0; u < U; ++u) {
                out[l].kinds["h"][t * U + u] = float(h[u]);
                if (model == "LSTM") out[l].kinds["c"][t * U + u] = float(c[u]);
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

json curves(const std::string& model, std::size_t epochs, double final_ppl, double tok_s, bool clip_stats, std::uint64_t seed) {
    Rand r(seed);
    json train = json::array(), eps = json::array();
    const std::size_t batches = 2983, interval = 200;
    double lr = 20.0;
    for (std::size_t e = 1; e <= epochs; ++e) {
        for (std::size_t b = interval; b <= batches; b = b + interval > batches && b != batches ? batches : b + interval) {
            const double x = double(e - 1) + double(b) / batches;
            const double ppl = final_ppl * (1.0 + 5.5 * std::exp(-2.2 * x)) * std::exp(0.03 * r.normal());
            const double gn = (model == "RNN_TANH" ? 2.5 : 0.9) * (0.6 + 0.8 * std::exp(-x)) * std::exp(0.25 * r.normal());
            json ev = {{"event", "train"}, {"epoch", e}, {"batch", b}, {"batches", batches}, {"lr", lr},
                       {"ms_per_batch", 700.0 * 20 / tok_s * 35}, {"tokens_per_s", tok_s * std::exp(0.04 * r.normal())},
                       {"loss", std::log(ppl)}, {"ppl", ppl}, {"grad_norm", gn}};
            if (clip_stats) ev["clip_fraction"] = std::min(1.0, std::max(0.0, 1.0 - 0.25 / gn * 0.9 + 0.05 * r.normal()));
            train.push_back(ev);
            if (b == batches) break;
        }
        const double vppl = final_ppl * (1.0 + 4.5 * std::exp(-2.2 * double(e))) * 0.97;
        eps.push_back({{"event", "epoch"}, {"epoch", e}, {"time_s", batches * 20.0 * 35 / tok_s}, {"val_loss", std::log(vppl)},
                       {"val_ppl", vppl}, {"lr", lr}});
        if (e == 2) lr /= 4;
    }
    return {{"train", train}, {"epochs", eps}, {"test", {{"event", "test"}, {"split", "test"}, {"loss", std::log(final_ppl * 1.08)},
                                                         {"ppl", final_ppl * 1.08}}},
            {"clip", 0.25}};
}

json gradient_flow(const std::string& model, std::size_t layers, std::uint64_t seed) {
    Rand r(seed);
    json norms = json::array();
    for (std::size_t l = 0; l < layers; ++l) {
        const double tau = model == "LSTM" ? 14.0 + 6.0 * l : model == "GRU" ? 10.0 + 5.0 * l : 2.2 + 0.6 * l;
        const double scale = 0.02 * (l + 1);
        json row = json::array();
        for (std::size_t t = 0; t < 35; ++t) row.push_back(scale * std::exp(-double(34 - t) / tau) * std::exp(0.08 * r.normal()));
        norms.push_back(row);
    }
    return {{"norms", norms}, {"windows", 40},
            {"description", "Mean over 40 windows of 35 steps (batch 20) of the norm of the gradient of the window's last-step loss with respect to each layer's h_t."}};
}

json gate_saturation(const std::vector<Layer>& acts, std::size_t T, std::size_t U, const std::vector<std::string>& gates) {
    json out = {{"low", 0.1}, {"high", 0.9}, {"tokens", T}, {"gates", json::array()}};
    for (std::size_t l = 0; l < acts.size(); ++l)
        for (const auto& g : gates) {
            const Saturation s = saturation(acts[l].kinds.at(g).data(), T, U);
            out["gates"].push_back({{"layer", l}, {"gate", g}, {"left", s.left}, {"right", s.right}});
        }
    return out;
}

json units(const std::vector<Layer>& acts, const std::vector<std::string>& order, std::size_t T, std::size_t U,
           const std::vector<TextProbe>& probes, int bits) {
    json layers = json::array();
    std::vector<ActivationView> views;
    for (std::size_t l = 0; l < acts.size(); ++l) {
        json kinds = json::array();
        for (const auto& k : order) {
            const auto it = acts[l].kinds.find(k);
            if (it == acts[l].kinds.end()) continue;
            kinds.push_back({{"name", k}, {"values", encode_matrix(it->second.data(), T, U, bits)}});
            views.push_back({l, k, T, U, it->second.data()});
        }
        layers.push_back({{"layer", l}, {"size", U}, {"kinds", kinds}});
    }
    json pj = json::array();
    for (const auto& p : probes) pj.push_back({{"name", p.name}, {"values", p.values}});
    return {{"layers", layers}, {"probes", pj}, {"top", units_top_json(rank_units(views, probes, 24, 5))}};
}

json surprisal(const std::vector<std::string>& tokens, const std::map<std::string, double>& counts, const std::vector<std::string>& pool,
               double quality, std::uint64_t seed) {
    Rand r(seed);
    const std::size_t T = tokens.size();
    // Frequency rank of each word in the training counts (0: most frequent).
    std::vector<std::pair<double, std::string>> by_count;
    for (const auto& [w, c] : counts) by_count.push_back({-c, w});
    std::sort(by_count.begin(), by_count.end());
    std::map<std::string, std::size_t> rank;
    for (std::size_t k = 0; k < by_count.size(); ++k) rank[by_count[k].second] = k;
    json loss = json::array(), top = json::array();
    const std::vector<std::pair<std::size_t, std::string>> bucket_of = {{10, "rank 1–10"}, {30, "11–30"}, {60, "31–60"}, {120, "61–120"}, {SIZE_MAX, "121+"}};
    std::map<std::string, std::pair<double, std::size_t>> buckets;
    for (std::size_t t = 0; t < T; ++t) {
        if (t == 0) {
            loss.push_back(nullptr);
            top.push_back(nullptr);
            continue;
        }
        const auto it = rank.find(tokens[t]);
        const std::size_t k = it == rank.end() ? by_count.size() : it->second;
        const double l = std::max(0.02, quality * (1.2 + 0.95 * std::log1p(double(k))) + 1.3 * r.normal());
        loss.push_back(l);
        const double pa = std::exp(-l);
        std::vector<std::pair<std::string, double>> cand;
        double p = 0.08 + 0.3 * r.uni();
        for (int c = 0; c < 5; ++c) {
            std::string w = pool[r.zipf(pool.size())];
            while (w == tokens[t] || std::any_of(cand.begin(), cand.end(), [&](const auto& e) { return e.first == w; }))
                w = pool[r.below(pool.size())];
            cand.push_back({w, p});
            p *= 0.45 + 0.3 * r.uni();
        }
        if (pa > cand.back().second) {
            cand.pop_back();
            cand.push_back({tokens[t], pa});
        }
        std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
        json e = json::array();
        for (const auto& [w, q] : cand) e.push_back({w, q});
        top.push_back(e);
        for (const auto& [limit, label] : bucket_of)
            if (k < limit) {
                buckets[label].first += l;
                buckets[label].second += 1;
                break;
            }
    }
    json bf = json::array();
    for (const auto& [limit, label] : bucket_of)
        if (buckets.count(label)) bf.push_back({{"label", label}, {"loss", buckets[label].first / double(buckets[label].second)}, {"count", buckets[label].second}});
    json bp = json::array();
    for (std::size_t t = 0; t < 35; ++t) bp.push_back(quality * 5.4 + 0.5 * std::exp(-double(t) / 2.5) + 0.04 * r.normal());
    return {{"loss", loss}, {"top", top}, {"by_frequency", bf}, {"by_position", bp}};
}

// An embedding table whose rows cluster by word class, projected with pca_2d; neighbours with nearest_rows.
json embeddings(const std::vector<std::vector<std::string>>& classes, const std::map<std::string, double>& counts, std::size_t D,
                std::uint64_t seed) {
    Rand r(seed);
    std::vector<std::string> words;
    std::vector<float> table;
    for (std::size_t k = 0; k < classes.size(); ++k) {
        std::vector<double> centre(D);
        for (double& v : centre) v = 0.5 * r.normal();
        for (const auto& w : classes[k]) {
            if (std::find(words.begin(), words.end(), w) != words.end()) continue;
            words.push_back(w);
            for (std::size_t d = 0; d < D; ++d) table.push_back(float(centre[d] + 0.35 * r.normal()));
        }
    }
    std::vector<std::size_t> rows(words.size());
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    const Projection p = pca_2d(table.data(), words.size(), D, rows);
    json count = json::array();
    for (const auto& w : words) count.push_back(counts.count(w) ? counts.at(w) : 0.0);
    std::vector<std::size_t> by_freq = rows;
    std::stable_sort(by_freq.begin(), by_freq.end(), [&](std::size_t a, std::size_t b) { return count[a] > count[b]; });
    json nb = json::array();
    for (std::size_t k = 0; k < std::min<std::size_t>(24, by_freq.size()); ++k) {
        json near = json::array();
        for (const auto& [row, cos] : nearest_rows(table.data(), words.size(), D, by_freq[k], 8)) near.push_back({words[row], cos});
        nb.push_back({{"word", words[by_freq[k]]}, {"near", near}});
    }
    return {{"matrix", "encoder.weight"}, {"points", {{"words", words}, {"x", p.x}, {"y", p.y}, {"count", count}}},
            {"explained", {p.explained[0], p.explained[1]}}, {"neighbours", nb}};
}

json timing(const std::string& model, std::size_t H, double scale) {
    std::map<std::string, OpTiming> prof;
    // Seconds for 50 batches of a 2 x 200 model on two cores, roughly as profiled.
    auto add = [&](const std::string& name, double f, double b, std::size_t calls) { prof[name] = {f * scale * 0.05, b * scale * 0.05, calls}; };
    const std::string g = model == "LSTM" ? "4" : model == "GRU" ? "3" : "1";
    const std::size_t G = model == "LSTM" ? 4 : model == "GRU" ? 3 : 1;
    add(fmt::format("affine (700 x {})", 33278), 9.1, 17.9, 50);
    add(fmt::format("log_softmax (700 x {})", 33278), 3.2, 2.1, 50);
    add(fmt::format("matmul (20 x {})", G * H), 2.9 * G / 4, 3.4 * G / 4, 3500);
    add(fmt::format("affine (700 x {})", G * H), 1.6 * G / 4, 2.2 * G / 4, 100);
    add(fmt::format("sigmoid (20 x {})", H), model == "RNN_TANH" ? 0.0 : 0.9, 0.7, model == "RNN_TANH" ? 0 : 5250);
    add(fmt::format("tanh (20 x {})", H), 0.6, 0.5, 3500);
    add(fmt::format("mul (20 x {})", H), 0.5, 0.8, 7000);
    add(fmt::format("add (20 x {})", H), 0.3, 0.2, 3500);
    add(fmt::format("slice (20 x {})", H), 0.4, 0.6, 7000);
    add("embedding (700 x 200)", 0.2, 0.4, 50);
    add("dropout (700 x 200)", 0.3, 0.2, 150);
    add("cross_entropy (1 x 1)", 0.4, 0.3, 50);
    add("(deferred weight gradients)", 0.0, 2.4, 50);
    json ops = timing_ops_json(prof);
    double total = 0;
    for (const auto& [k, t] : prof) total += t.forward_s + t.backward_s;
    json other = json::array({{{"name", "optimizer step"}, {"seconds", 0.045 * scale}}, {{"name", "gradient clipping"}, {"seconds", 0.02 * scale}},
                              {{"name", "tape and loop overhead"}, {"seconds", 0.035 * scale}}});
    return {{"seconds", total + 0.1 * scale}, {"batches", 50}, {"ops", ops}, {"other", other}, {"trace_file", "trace.json"},
            {"description", "50 training batches (batch 20, BPTT 35) profiled with Tape::set_profiling."}};
}

std::string join_text(const std::vector<std::string>& toks, bool word) {
    std::string s;
    for (const auto& t : toks) {
        if (word) {
            if (t == "<eos>") {
                s += "\n";
                continue;
            }
            if (!s.empty() && s.back() != '\n') s += ' ';
        }
        s += t;
    }
    return s;
}

json samples(bool word, std::uint64_t seed) {
    json items = json::array();
    for (double temp : {0.5, 0.8, 1.0}) {
        Rand r(seed + static_cast<std::uint64_t>(temp * 10));
        const auto toks = word ? word_text(r, 70) : char_text(r, 260);
        items.push_back({{"temperature", temp}, {"text", join_text(toks, word)}});
    }
    return {{"prompt", word ? "The" : "ROMEO:"}, {"items", items}};
}

std::map<std::string, double> count_tokens(const std::vector<std::string>& toks, double scale) {
    std::map<std::string, double> c;
    for (const auto& t : toks) c[t] += scale;
    return c;
}

json card(const std::string& model, std::size_t layers, std::size_t H, std::size_t V, const std::string& level, double valid,
          double test, double tok_s, std::size_t epochs) {
    const std::size_t G = model == "LSTM" ? 4 : model == "GRU" ? 3 : 1;
    std::size_t params = V * 200 + H * V + V;
    for (std::size_t l = 0; l < layers; ++l) params += G * H * ((l == 0 ? 200 : H) + H) + 2 * G * H;
    const std::string data = level == "word" ? "../shared/data/wikitext-2" : "../shared/data/tinyshakespeare";
    return {{"checkpoint", fmt::format("{}-{}.safetensors", level == "word" ? "wt2" : "shakespeare", model)},
            {"model", fmt::format("{} {}x{}", model, layers, H)},
            {"command", fmt::format("xtgrad-lm train --data {} --level {} --model {} --emsize 200 --nhid {} --nlayers {} "
                                    "--lr 20 --clip 0.25 --epochs {} --batch-size 20 --bptt 35 --dropout 0.2 --save {}-{}.safetensors",
                                    data, level, model, H, layers, epochs, level == "word" ? "wt2" : "shakespeare", model)},
            {"config", {{"model", model}, {"emsize", 200}, {"nhid", H}, {"nlayers", layers}, {"dropout", 0.2}, {"tied", false},
                        {"lr", 20}, {"clip", 0.25}, {"bptt", 35}, {"batch_size", 20}, {"seed", 1111}, {"optimizer", "sgd"},
                        {"log_interval", 200}, {"note", "</script><script>alert(1)</script> must stay text"}}},
            {"parameters", params},
            {"data", {{"path", data}, {"level", level}, {"vocab_size", V}, {"train_tokens", level == "word" ? 2088628 : 1003854},
                      {"checksum", level == "word" ? "sha256:3f6b2a9c0e41d77c5c1fb1d5b6f0a7e2c9d94e1c8b2a7f60d13e5c4b9a8f7e21"
                                                   : "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}}},
            {"best_valid_ppl", valid}, {"test_ppl", test}, {"tokens_per_s", tok_s}, {"wall_time_s", 2983.0 * epochs * 700 / tok_s},
            {"epochs", epochs}};
}

void write(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f) throw FileError(path + ": cannot write");
}

json compare_doc() {
    Rand r(11);
    const std::size_t T = 1500, U = 200, L = 2;
    const auto passage = word_text(r, T);
    const auto corpus = word_text(r, 60000);
    const auto counts = count_tokens(corpus, 2088628.0 / 60000.0);
    const auto probes = text_probes(passage, "word", &counts);
    std::vector<std::string> pool;
    for (const auto* v : {&kDet, &kPrep, &kNoun, &kVerb, &kAdj}) pool.insert(pool.end(), v->begin(), v->end());
    pool.insert(pool.begin(), {"the", ",", ".", "of", "<eos>", "and", "in"});
    json runs = json::array();
    struct M { const char* model; double valid, quality, tok_s, plant; };
    for (const M& m : {M{"LSTM", 162.4, 0.74, 12800, 0.85}, M{"GRU", 171.9, 0.76, 14900, 0.75}, M{"RNN_TANH", 246.8, 0.82, 31500, 0.35}}) {
        const std::uint64_t seed = std::hash<std::string>{}(m.model) % 1000;
        const auto acts = activations(m.model, L, U, passage, probes, m.plant, seed);
        json run = {{"name", m.model == std::string("RNN_TANH") ? "tanh RNN" : m.model},
                    {"card", card(m.model, L, U, 33278, "word", m.valid, m.valid * 0.95, m.tok_s, 3)},
                    {"curves", curves(m.model, 3, m.valid, m.tok_s, true, seed + 1)},
                    {"gradient_flow", gradient_flow(m.model, L, seed + 2)},
                    {"passage", {{"level", "word"}, {"tokens", passage}, {"source", "valid"}, {"offset", 4096}, {"eos", "<eos>"}}},
                    {"units", units(acts, {"h", "c", "i", "f", "g", "o", "r", "z", "n"}, T, U, probes, 4)},
                    {"surprisal", surprisal(passage, counts, pool, m.quality, seed + 3)},
                    {"embeddings", embeddings({kDet, kAdj, kNoun, kVerb, kPrep, kName, kNum, kConj}, counts, 200, seed + 4)},
                    {"samples", samples(true, seed + 5)},
                    {"timing", timing(m.model, U, m.model == std::string("RNN_TANH") ? 0.45 : 1.0)}};
        if (std::string(m.model) == "LSTM") run["gate_saturation"] = gate_saturation(acts, T, U, {"i", "f", "o"});
        if (std::string(m.model) == "GRU") run["gate_saturation"] = gate_saturation(acts, T, U, {"r", "z"});
        runs.push_back(run);
    }
    return {{"format", "xtgrad-report"}, {"version", 1}, {"title", "WikiText-2, 3 epochs: LSTM vs GRU vs tanh RNN (2 x 200)"},
            {"created", "2024-06-01 12:00 UTC"}, {"generator", "report_fixture (synthetic data)"}, {"runs", runs}};
}

json char_doc() {
    Rand r(23);
    const std::size_t T = 1500, U = 650, L = 2;
    const auto passage = char_text(r, T);
    const auto corpus = char_text(r, 50000);
    const auto counts = count_tokens(corpus, 20.0);
    const auto probes = text_probes(passage, "char", &counts);
    const auto acts = activations("LSTM", L, U, passage, probes, 0.9, 5);
    std::vector<std::string> pool = {" ", "e", "t", "o", "a", "h", "s", "n", "\n", "r", "i", "l", ",", "d", "u", "m", "y", "w", ".", ":"};
    json curves_sec = curves("LSTM", 1, 4.6, 41000, false, 9);
    curves_sec.erase("clip");
    // An attention cell over the last 40 characters: weights fall off with distance, with a pull to line starts.
    json maps = json::array();
    for (int layer = 0; layer < 2; ++layer) {
        const std::size_t q0 = 200, n = 40;
        json queries = json::array(), keys = json::array(), weights = json::array();
        for (std::size_t k = 0; k < n; ++k) {
            queries.push_back(q0 + k);
            keys.push_back(q0 + k);
        }
        for (std::size_t q = 0; q < n; ++q) {
            std::vector<double> w(n, 0.0);
            double sum = 0;
            for (std::size_t k = 0; k <= q; ++k) {
                const bool line_start = q0 + k > 0 && passage[q0 + k - 1] == "\n";
                w[k] = std::exp(-double(q - k) / (layer == 0 ? 2.0 : 9.0)) + (line_start ? 1.5 : 0.0);
                sum += w[k];
            }
            json row = json::array();
            for (std::size_t k = 0; k < n; ++k) row.push_back(k <= q ? json(w[k] / sum) : json(nullptr));
            weights.push_back(row);
        }
        maps.push_back({{"name", fmt::format("layer {} · last 40 characters", layer)}, {"queries", queries}, {"keys", keys}, {"weights", weights}});
    }
    std::vector<std::vector<std::string>> classes = {{"a", "e", "i", "o", "u"}, {"t", "n", "s", "r", "h", "l", "d"},
                                                     {"A", "E", "I", "O", "R", "J", "K", "M", "G"}, {",", ".", "!", "?", ":", ";"},
                                                     {" ", "\n"}, {"b", "c", "f", "g", "m", "p", "w", "y", "v", "k"}};
    json run = {{"name", "char LSTM"},
                {"card", card("LSTM", L, U, 65, "char", 4.61, 4.72, 41000, 1)},
                {"curves", curves_sec},
                {"gate_saturation", gate_saturation(acts, T, U, {"i", "f", "o"})},
                {"passage", {{"level", "char"}, {"tokens", passage}, {"source", "valid"}, {"offset", 0}}},
                {"units", units(acts, {"h", "c", "i", "f", "g", "o"}, T, U, probes, 4)},
                {"surprisal", surprisal(passage, counts, pool, 0.22, 7)},
                {"embeddings", embeddings(classes, counts, 200, 8)},
                {"samples", samples(false, 10)},
                {"attention", {{"maps", maps}, {"description", "Synthetic attention cell: rows are the character attending, columns the characters it looks back at."}}}};
    run["card"]["model"] = "LSTM 2x650 + attention";
    return {{"format", "xtgrad-report"}, {"version", 1}, {"title", "Tiny Shakespeare, character level: LSTM 2 x 650"},
            {"created", "2024-06-01 12:00 UTC"}, {"generator", "report_fixture (synthetic data)"}, {"runs", json::array({run})}};
}

std::vector<TraceSpan> trace_spans() {
    std::vector<TraceSpan> spans;
    double t = 0;
    for (int b = 0; b < 20; ++b) {
        const double f = 180 + 10 * (b % 3), bw = 260 + 7 * (b % 4);
        spans.push_back({"batch", "train", t, f + bw + 60, 1, 1, {{"batch", std::to_string(b + 1)}}});
        spans.push_back({"forward", "train", t, f, 1, 1, {}});
        spans.push_back({"decoder affine (700 x 33278)", "op", t + f - 70, 60, 1, 1, {{"shape", "700 x 33278"}}});
        spans.push_back({"backward", "train", t + f, bw, 1, 1, {}});
        spans.push_back({"clip", "train", t + f + bw, 15, 1, 1, {}});
        spans.push_back({"sgd step", "train", t + f + bw + 15, 45, 1, 1, {}});
        t += f + bw + 60 + 5;
    }
    return spans;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    try {
        // A run with nothing recorded: every section must say so rather than fail.
        const json minimal = {{"format", "xtgrad-report"}, {"version", 1}, {"runs", {{{"name", "empty run"}}}}};
        for (const auto& [name, doc] : {std::pair<std::string, json>{"compare", compare_doc()}, {"char", char_doc()}, {"minimal", minimal}}) {
            write(dir + "/" + name + ".json", doc.dump());
            const std::string page = render_report(doc);
            write(dir + "/" + name + ".html", page);
            std::printf("%s.html: %.2f MB\n", name.c_str(), double(page.size()) / 1e6);
        }
        write_chrome_trace(dir + "/trace.json", trace_spans(), "xtgrad-lm train", {{1, "main"}});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "report_fixture: %s\n", e.what());
        return 1;
    }
    return 0;
}
