// The model side of the report: a tiny LSTM trained for a few batches through the trainer (whose metrics log must now
// carry a start event, the data checksum and the clipping share), then `make_report` on it, each section checked
// against an independent computation; a hand-made user cell whose probes are known exactly (gate saturation,
// attention maps, a probe too wide for the units view); SHA-256 against the FIPS 180-4 test vectors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/report_model.hpp>
#include <xtgrad/apps/lm/report_page.hpp>
#include <xtgrad/apps/lm/sha256.hpp>
#include <xtgrad/apps/lm/trainer.hpp>
#include <xtgrad/lib/safetensors.hpp>
#include <xtgrad/tape/ops.hpp>

#include "test_support.hpp"

using nlohmann::json;
using namespace xtgrad;

using test_support::error_of;

namespace {

// A small word-level corpus in a new folder.
std::string make_data() { return test_support::small_corpus("report", 3000, 800); }

// A tiny LSTM trained on `data` for `batches` batches of 4 x bptt, saved to `save`: its options.
TrainOptions train_tiny(const std::string& data, const std::string& save, std::size_t nhid, std::size_t bptt,
                        std::size_t batches, double clip) {
    TrainOptions o;
    o.data = data;
    o.save = save;
    o.emsize = o.nhid = nhid;
    o.batch_size = 4;
    o.eval_batch_size = 3;
    o.bptt = bptt;
    o.epochs = 1;
    o.max_batches = batches;
    o.log_interval = 4;
    o.clip = clip;
    o.threads = 1;
    o.quiet = true;
    o.command = "xtgrad-lm train --data '" + data + "'";
    std::ostringstream log;
    Trainer(o, builtin_registry(), log).run();
    return o;
}

std::vector<json> read_log(const std::string& path) {
    std::vector<json> out;
    for (const std::string& line : read_metrics_lines(path)) out.push_back(json::parse(line));
    return out;
}

// A user cell whose probes are known in advance, from the window position at.t only:
//   "q" (4 units): 0.05 always; 0.95 always; 0.05 at even t, else 0.5; 0.95 when t % 5 == 0, else 0.5
//   "attn" (K = 3 weights): [0.2, 0.3, 0.5] at even t, [0.6, 0.3, 0.1] at odd t
//   "wide" (6 values, not the layer's width: no units view) and "neg" (in [-1, 1]: not a gate)
// Its state is h' = tanh(x_t + h), so emsize must equal nhid (4).
class ProbeCell : public Cell {
public:
    ProbeCell(const CellSpec& spec, Rng&) : in_(spec.input), hidden_(spec.hidden) {}
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    StepOut step(const Step& at, Var x_t, const State& s) override {
        Tape& tape = at.tape();
        const bool even = at.t % 2 == 0;
        Array q({at.batch, 4});
        Array a({at.batch, 3});
        for (std::size_t b = 0; b < at.batch; ++b) {
            q(b, 0) = 0.05f;
            q(b, 1) = 0.95f;
            q(b, 2) = even ? 0.05f : 0.5f;
            q(b, 3) = at.t % 5 == 0 ? 0.95f : 0.5f;
            const float w[2][3] = {{0.2f, 0.3f, 0.5f}, {0.6f, 0.3f, 0.1f}};
            for (int j = 0; j < 3; ++j) a(b, j) = w[even ? 0 : 1][j];
        }
        at.probe("q", tape.constant(q));
        at.probe("attn", tape.constant(a));
        at.probe("wide", tape.constant({at.batch, 6}, 0.5f));
        const Var h = tanh(x_t + s[0]);
        at.probe("neg", h);
        return State{h};
    }
    void collect(std::vector<Parameter*>&) override {}

private:
    std::size_t in_, hidden_;
};

Registry probe_registry() {
    Registry r = builtin_registry();
    r.add_cell("Probe", cell_factory<ProbeCell>(), "a cell with known probes (tests)");
    return r;
}

}  // namespace

TEST_CASE("SHA-256 gives FIPS 180-4's test vectors, whole or fed in pieces; files hash as their concatenation") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // Every split of a 130-byte message (across the 64-byte blocks and the padding boundary) gives the same hash.
    std::string msg;
    for (int i = 0; i < 130; ++i) msg += static_cast<char>('a' + i % 26);
    const std::string whole = sha256_hex(msg);
    for (std::size_t cut = 0; cut <= msg.size(); ++cut) {
        Sha256 h;
        h.update(msg.data(), cut);
        h.update(msg.data() + cut, msg.size() - cut);
        CHECK(h.hex() == whole);
    }
    Sha256 spent;
    spent.hex();
    CHECK(error_of([&] { spent.update("x", 1); }).find("after digest") != std::string::npos);
    const std::string d = test_support::temp_folder("sha256");
    std::ofstream(d + "/a") << "abcdbcdecdefdefgefghfghighijhijk";
    std::ofstream(d + "/b") << "ijkljklmklmnlmnomnopnopq";
    CHECK(sha256_files({d + "/a", d + "/b"}) == "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(error_of([&] { sha256_files({d + "/a", d + "/missing"}); }).find(d + "/missing") != std::string::npos);
}

TEST_CASE("the trainer's metrics log: a start event with the data checksum, grad norm and clip fraction per interval") {
    const std::string d = make_data();
    for (const auto& [clip, fraction] : {std::pair<double, double>{1e-6, 1.0}, {1e9, 0.0}}) {
        const TrainOptions o = train_tiny(d, d + (clip < 1 ? "/tight.safetensors" : "/loose.safetensors"), 8, 6, 8, clip);
        const std::vector<json> ev = read_log(Checkpointer(o.save).metrics_path());
        REQUIRE(ev.size() >= 4);
        const json& start = ev[0];
        CHECK(start["event"] == "start");
        CHECK(start["command"] == o.command);
        CHECK(start["checksum"] == sha256_files({d + "/train.txt", d + "/valid.txt", d + "/test.txt"}));
        CHECK(start["data_files"] == "train.txt,valid.txt,test.txt");
        const Corpus c = load_corpus(d, "word");
        CHECK(start["train_tokens"] == c.train.size());
        CHECK(start["valid_tokens"] == c.valid.size());
        CHECK(start["vocab_size"] == c.vocab.size());
        const LoadedModel m = load_model(o.save, builtin_registry(), nullptr, "");
        CHECK(start["parameters"] == m.model->parameter_count());
        std::size_t trains = 0;
        for (const json& e : ev) {
            if (e["event"] == "train") {
                ++trains;
                CHECK(e["grad_norm"].get<double>() > 0);
                // a threshold below every norm clips every batch; one above none
                CHECK(e["clip_fraction"].get<double>() == fraction);
            }
            if (e["event"] == "test") {
                CHECK(e["tokens_per_s"].get<double>() > 0);
                CHECK(e["wall_time_s"].get<double>() > 0);
            }
        }
        CHECK(trains == 2);
        // what the report reads of it: the curves keep their fields, the start event and extra test fields dropped
        std::ifstream in(Checkpointer(o.save).metrics_path());
        const json curves = curves_from_metrics(in, "log");
        CHECK(curves["train"][0]["clip_fraction"] == fraction);
        CHECK_FALSE(curves["test"].contains("wall_time_s"));
    }
}

TEST_CASE("report of a tiny trained LSTM: a valid document whose sections match independent computations") {
    const std::string d = make_data();
    const TrainOptions t = train_tiny(d, d + "/lstm.safetensors", 12, 7, 12, 0.25);

    ReportOptions o;
    o.checkpoint = t.save;
    o.out = d + "/report.html";
    o.trace = d + "/trace.json";
    o.tokens = 120;
    o.windows = 4;
    o.position_tokens = 300;
    o.timing_batches = 3;
    o.sample_tokens = 12;
    o.quiet = true;
    json doc;
    std::ostringstream log;
    make_report(o, builtin_registry(), log, &doc);
    CHECK_NOTHROW(validate_report(doc));
    const std::string page = read_file(o.out);
    CHECK(page.find("<meta name=\"generator\" content=\"xtgrad\">") != std::string::npos);
    const json trace = json::parse(read_file(o.trace));
    std::size_t batches = 0;
    for (const json& e : trace["traceEvents"]) batches += e["name"] == "batch";
    CHECK(batches == o.timing_batches);

    const json& run = doc["runs"][0];
    for (const char* s : {"card", "curves", "gradient_flow", "gate_saturation", "passage", "units", "surprisal", "embeddings",
                          "samples", "timing"})
        CHECK_MESSAGE(run.contains(s), s);
    CHECK_FALSE(run.contains("attention"));  // the LSTM probes no "attn"

    LoadedModel m = load_model(t.save, builtin_registry(), nullptr, "");
    const Corpus corpus = load_corpus(d, "word");
    const std::size_t T = o.tokens;
    const Ids ids(corpus.valid.begin(), corpus.valid.begin() + static_cast<long>(T));

    // card: from the checkpoint, the log and the data
    const json& card = run["card"];
    CHECK(card["parameters"] == m.model->parameter_count());
    CHECK(card["command"] == t.command);
    CHECK(card["data"]["checksum"] == sha256_files(corpus_files(d, "word")));
    CHECK(card["data"]["valid_tokens"] == corpus.valid.size());
    CHECK(card["config"]["bptt"] == 7);
    CHECK(card["epochs"] == 1);
    CHECK(card["test_ppl"].get<double>() > 1.0);
    CHECK(run["curves"]["clip"] == 0.25);

    // One forward pass over the whole passage at batch 1, a single window: the reference for the report's windowed pass.
    Tape tape;
    NoGrad ng(tape);
    Rng unused(0);
    Ctx c{tape, unused, false};
    const LMFeatures f = m.model->features(c, ids, 1, m.model->zero_state(1));
    const Array lp = m.model->log_probs(c, f.y);
    const std::size_t V = lp.shape()[1];

    // surprisal: loss[t] = -log p(ids[t] | ids[<t]), and the top-5 list is the 5 likeliest next tokens, best first
    const json& sp = run["surprisal"];
    CHECK(sp["loss"][0].is_null());
    CHECK(sp["top"][0].is_null());
    for (std::size_t tk = 1; tk < T; ++tk) {
        const float* row = lp.data() + (tk - 1) * V;
        CHECK(sp["loss"][tk].get<double>() == doctest::Approx(-row[ids[tk]]).epsilon(1e-4));
        const json& top = sp["top"][tk];
        REQUIRE(top.size() == 5);
        const std::int32_t best = static_cast<std::int32_t>(std::max_element(row, row + V) - row);
        CHECK(top[0][0] == m.vocab.token(best));
        CHECK(top[0][1].get<double>() == doctest::Approx(std::exp(row[best])).epsilon(1e-4));
        for (std::size_t k = 1; k < 5; ++k) CHECK(top[k][1].get<double>() <= top[k - 1][1].get<double>());
    }
    // by_frequency holds every scored token once; by_position has one mean per window position
    std::size_t scored = 0;
    for (const json& b : sp["by_frequency"]) scored += b["count"].get<std::size_t>();
    CHECK(scored == T - 1);
    CHECK(sp["by_position"].size() == t.bptt);

    // units: the top layer's h is the model's output at each step, within half a quantisation step
    const json& units = run["units"];
    REQUIRE(units["layers"].size() == 2);
    std::vector<std::string> kinds;
    for (const json& k : units["layers"][1]["kinds"]) kinds.push_back(k["name"]);
    CHECK(kinds == std::vector<std::string>{"h", "c", "i", "f", "g", "o"});
    const json& h1 = units["layers"][1]["kinds"][0]["values"];
    const std::vector<float> h = decode_matrix(h1);
    for (std::size_t u = 0; u < t.nhid; ++u) {
        const double step = (h1["max"][u].get<double>() - h1["min"][u].get<double>()) / (h1["encoding"] == "u8" ? 255 : 15);
        for (std::size_t tk = 0; tk < T; ++tk)
            CHECK(std::fabs(h[tk * t.nhid + u] - f.y.value()(tk, u)) <= step / 2 + 1e-5);
    }
    CHECK(units["probes"].size() == 5);
    CHECK_FALSE(units["top"].empty());

    // gate saturation: the sigmoid gates of each layer, not the tanh candidate g
    std::vector<std::string> gates;
    for (const json& g : run["gate_saturation"]["gates"]) gates.push_back(fmt::format("{}{}", g["layer"].get<int>(), g["gate"].get<std::string>()));
    CHECK(gates == std::vector<std::string>{"0i", "0f", "0o", "1i", "1f", "1o"});

    // gradient flow: at the last step, |dL/dh| of the top layer is |(softmax - onehot) W_decoder| in closed form
    const json& gf = run["gradient_flow"];
    CHECK(gf["windows"] == o.windows);
    REQUIRE(gf["norms"].size() == 2);
    CHECK(gf["norms"][0].size() == t.bptt);
    const auto [one, used] = gradient_flow_norms(*m.model, corpus.valid, t.bptt, 1);
    REQUIRE(used == 1);
    {
        const Ids window(corpus.valid.begin(), corpus.valid.begin() + static_cast<long>(t.bptt));
        tape.clear();
        const LMFeatures g = m.model->features(c, window, 1, m.model->zero_state(1));
        const Array p = m.model->log_probs(c, g.y);
        const std::int32_t target = corpus.valid[t.bptt];
        const Array& W = m.model->decoder.weight.value;
        double norm = 0;
        for (std::size_t u = 0; u < t.nhid; ++u) {
            double s = 0;
            for (std::size_t v = 0; v < V; ++v)
                s += (std::exp(p((t.bptt - 1), v)) - (static_cast<std::int32_t>(v) == target ? 1.0 : 0.0)) * W(v, u);
            norm += s * s;
        }
        CHECK(one[1][t.bptt - 1] == doctest::Approx(std::sqrt(norm)).epsilon(1e-4));
        for (std::size_t l = 0; l < 2; ++l)
            for (std::size_t k = 0; k < t.bptt; ++k) CHECK(one[l][k] > 0.0);
    }

    // embeddings: the most frequent words, neither <unk> nor <eos>, with their neighbours by cosine
    const json& emb = run["embeddings"];
    CHECK(emb["matrix"] == "encoder.weight");
    for (const json& w : emb["points"]["words"]) CHECK((w != "<unk>" && w != "<eos>"));
    CHECK(emb["neighbours"][0]["near"].size() == 8);

    // samples at three temperatures; timing over the asked batches, and the weights put back afterwards
    CHECK(run["samples"]["items"].size() == 3);
    CHECK(run["timing"]["batches"] == o.timing_batches);
    CHECK_FALSE(run["timing"]["ops"].empty());
    const Array before = m.model->decoder.weight.value;
    ReportRun rr;
    rr.name = "again";
    rr.checkpoint = t.save;
    rr.model = m.model.get();
    rr.vocab = &m.vocab;
    rr.corpus = &corpus;
    rr.data_path = d;
    o.trace.clear();
    report_run(rr, o, 8, log);
    CHECK(m.model->decoder.weight.value == before);

    // an existing file that is not a report is never overwritten; a report is
    std::ofstream(d + "/notes.html") << "my notes";
    o.out = d + "/notes.html";
    CHECK(error_of([&] { make_report(o, builtin_registry(), log); }).find("is not a file this command wrote") != std::string::npos);
    CHECK(read_file(d + "/notes.html") == "my notes");
    o.out = d + "/report.html";
    o.tokens = 100;
    make_report(o, builtin_registry(), log, &doc);
    CHECK(doc["runs"][0]["passage"]["tokens"].size() == 100);
    o.offset = corpus.valid.size();
    CHECK(error_of([&] { make_report(o, builtin_registry(), log); }).find("--offset") != std::string::npos);
}

TEST_CASE("a user cell's probes: exact gate saturation, attention maps by the \"attn\" convention, notes for the rest") {
    const std::string d = make_data();
    const Corpus corpus = load_corpus(d, "word");
    const Registry registry = probe_registry();
    LMConfig cfg;
    cfg.cell = "Probe";
    cfg.vocab = corpus.vocab.size();
    cfg.emsize = cfg.nhid = 4;
    cfg.nlayers = 2;
    Rng rng(3);
    std::unique_ptr<RNNLM> model = registry.build(cfg, rng);
    json options = {{"bptt", 5}, {"batch-size", 3}, {"eval-batch-size", 2}};
    ReportRun run;
    run.name = "probe cell";
    run.checkpoint = "(memory)";
    run.model = model.get();
    run.vocab = &corpus.vocab;
    run.corpus = &corpus;
    run.data_path = d;
    run.options = &options;
    ReportOptions o;
    o.tokens = 30;  // six whole windows of 5: step t of a window is passage position t mod 5
    o.windows = 2;
    o.position_tokens = 50;
    o.timing_batches = 2;
    o.sample_tokens = 5;
    std::ostringstream log;
    const json r = report_run(run, o, 8, log);
    const json doc = {{"format", "xtgrad-report"}, {"version", 1}, {"runs", {r}}};
    CHECK_NOTHROW(validate_report(doc));

    // gates: only "q" (in [0, 1]); "neg" takes negative values, "attn" is attention, "wide" is not one per unit
    REQUIRE(r["gate_saturation"]["gates"].size() == 2);
    for (const json& g : r["gate_saturation"]["gates"]) {
        CHECK(g["gate"] == "q");
        const std::vector<double> left = g["left"], right = g["right"];
        CHECK(left == std::vector<double>{1.0, 0.0, 0.6, 0.0});   // even positions 0, 2, 4 of each 5: 18 of 30
        CHECK(right == std::vector<double>{0.0, 1.0, 0.0, 0.2});  // position 0 of each 5: 6 of 30
    }
    // units: h, then the probes of the layer's width (q, neg); "wide" is named in the card's notes
    std::vector<std::string> kinds;
    for (const json& k : r["units"]["layers"][0]["kinds"]) kinds.push_back(k["name"]);
    CHECK(kinds == std::vector<std::string>{"h", "q", "neg"});
    CHECK(r["card"]["notes"].get<std::string>().find("'wide' has 6 values per step") != std::string::npos);

    // attention: row q weighs the states after tokens q-3, q-2, q-1 with [0.2, 0.3, 0.5] (even q mod 5) or
    // [0.6, 0.3, 0.1] (odd); every other key is null
    REQUIRE(r["attention"]["maps"].size() == 2);
    for (const json& m : r["attention"]["maps"]) {
        const std::vector<std::size_t> queries = m["queries"], keys = m["keys"];
        REQUIRE(m["weights"].size() == queries.size());
        for (std::size_t qi = 0; qi < queries.size(); ++qi) {
            const std::size_t q = queries[qi];
            const double even[3] = {0.2, 0.3, 0.5}, odd[3] = {0.6, 0.3, 0.1};
            const double* w = (q % 5) % 2 == 0 ? even : odd;
            for (std::size_t ki = 0; ki < keys.size(); ++ki) {
                const std::size_t key = keys[ki];
                const json& v = m["weights"][qi][ki];
                if (key < q && key + 3 >= q) {
                    CHECK(v.get<double>() == doctest::Approx(w[key + 3 - q]));
                } else {
                    CHECK(v.is_null());
                }
            }
        }
    }
    // and through the whole command, as a program registering the cell gets it
    const std::string path = d + "/probe.safetensors";
    save_model(path, *model, corpus.vocab, "word");
    ReportOptions c = o;
    c.checkpoint = path;
    c.data = d;
    c.out = d + "/probe.html";
    c.quiet = true;
    json full;
    make_report(c, registry, log, &full);
    CHECK(full["runs"][0]["attention"]["maps"].size() == 2);
    CHECK(full["runs"][0]["card"]["notes"].get<std::string>().find("No metrics log") != std::string::npos);
    CHECK(error_of([&] { make_report(c, builtin_registry(), log); }).find("cell 'Probe'") != std::string::npos);
}
