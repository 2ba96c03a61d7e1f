// The model report's C++ side: the data document's checks, the page's assembly (escaping, inlining, no external
// reference), the matrix encoding, the metrics-log reader, text probes, unit ranking, saturation, PCA, neighbours and
// the Chrome trace writer, each against hand-computed cases. The page itself is tested in a browser by
// tests/report/browser_test.py.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include <xtgrad/apps/lm/report_page.hpp>
#include <xtgrad/apps/lm/trace_events.hpp>

#include "test_support.hpp"

using nlohmann::json;
using namespace xtgrad;

using test_support::error_of;

namespace {

// The smallest document with every section, over a 4-token passage.
json full_doc() {
    const std::vector<float> h = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 0.7f, -0.8f};  // 4 tokens x 2 units
    return {{"format", "xtgrad-report"},
            {"version", 1},
            {"title", "a <test> & \"title\""},
            {"runs",
             {{{"name", "LSTM"},
               {"card", {{"model", "LSTM 1x2"}, {"parameters", 100}, {"config", {{"nhid", 2}, {"cutoffs", {1, 2}}}},
                         {"data", {{"path", "x"}, {"vocab_size", 3}}}}},
               {"curves", {{"train", {{{"epoch", 1}, {"batch", 1}, {"batches", 2}, {"loss", 1.0}},
                                      {{"epoch", 1}, {"batch", 2}, {"batches", 2}, {"loss", 0.5}, {"clip_fraction", 0.5}}}},
                           {"epochs", {{{"epoch", 1}, {"val_ppl", 3.0}}}}}},
               {"gradient_flow", {{"norms", {{0.1, 0.2, nullptr}}}}},
               {"gate_saturation", {{"gates", {{{"layer", 0}, {"gate", "f"}, {"left", {0.1, 0.2}}, {"right", {0.5, 0.0}}}}}}},
               {"passage", {{"level", "word"}, {"tokens", {"a", "b", "<eos>", "c"}}}},
               {"units", {{"layers", {{{"layer", 0}, {"size", 2}, {"kinds", {{{"name", "h"}, {"values", encode_matrix(h.data(), 4, 2, 8)}}}}}}},
                          {"probes", {{{"name", "p"}, {"values", {0, 1, 2, 3}}}}},
                          {"top", {{{"probe", "p"}, {"layer", 0}, {"kind", "h"}, {"unit", 1}, {"r", -0.9}}}}}},
               {"surprisal", {{"loss", {nullptr, 1.0, 2.0, 0.5}}, {"top", {nullptr, json::array({json::array({"b", 0.4})}), json::array({json::array({"x", 0.3}), json::array({"<eos>", 0.1})}), nullptr}},
                              {"by_frequency", {{{"label", "all"}, {"loss", 1.2}, {"count", 3}}}}, {"by_position", {1.0, 0.9}}}},
               {"embeddings", {{"points", {{"words", {"a", "b"}}, {"x", {0, 1}}, {"y", {1, 0}}}}, {"explained", {0.5, 0.3}},
                               {"neighbours", {{{"word", "a"}, {"near", json::array({json::array({"b", 0.5})})}}}}}},
               {"samples", {{"prompt", "a"}, {"items", {{{"temperature", 1.0}, {"text", "b c"}}}}}},
               {"attention", {{"maps", {{{"name", "m"}, {"queries", {1, 2}}, {"keys", {0, 1}}, {"weights", {{1.0, nullptr}, {0.5, 0.5}}}}}}}},
               {"timing", {{"seconds", 2.0}, {"ops", {{{"name", "matmul (2 x 2)"}, {"forward_s", 0.5}, {"backward_s", 0.7}, {"calls", 3}}}},
                           {"other", {{{"name", "optimizer"}, {"seconds", 0.1}}}}}}}}}};
}

// The JSON inlined in a page, parsed back.
json inlined(const std::string& page) {
    const std::string open = "<script type=\"application/json\" id=\"report-data\">";
    const auto a = page.find(open);
    REQUIRE(a != std::string::npos);
    const auto b = page.find("</script>", a);
    REQUIRE(b != std::string::npos);
    return json::parse(page.substr(a + open.size(), b - a - open.size()));
}

}  // namespace

TEST_CASE("base64 matches RFC 4648's test vectors and round-trips every byte value") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, coded] : vectors) {
        CHECK(base64_encode(reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size()) == coded);
        const auto back = base64_decode(coded);
        CHECK(std::string(back.begin(), back.end()) == plain);
    }
    std::vector<std::uint8_t> all(256);
    for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
    CHECK(base64_decode(base64_encode(all.data(), all.size())) == all);
    CHECK(error_of([] { base64_decode("Zm9"); }).find("multiple of 4") != std::string::npos);
    CHECK(error_of([] { base64_decode("Zm9$"); }).find("bad character") != std::string::npos);
    CHECK(error_of([] { base64_decode("Zg=a"); }).find("bad character") != std::string::npos);
    CHECK(error_of([] { base64_decode("Zg==Zg=="); }).find("bad character") != std::string::npos);
}

TEST_CASE("encode_matrix quantises each column between its min and max, unit-major") {
    // Rows are tokens, columns units: [[0, 10], [1, 20]] -> column 0 then column 1, each 0 then full scale.
    const float m[] = {0.0f, 10.0f, 1.0f, 20.0f};
    const json e8 = encode_matrix(m, 2, 2, 8);
    CHECK(e8["encoding"] == "u8");
    CHECK(e8["data"] == "AP8A/w==");  // bytes 0, 255, 0, 255
    CHECK(e8["min"] == json({0.0, 10.0}));
    CHECK(e8["max"] == json({1.0, 20.0}));
    CHECK(encode_matrix(m, 2, 2, 4)["data"] == "Dw8=");  // nibbles 0, 15 | 0, 15
    // One column [0, 0.5, 1] at 4 bits: levels 0, 8 (7.5 rounds up), 15 -> bytes 0x08, 0xF0.
    const float col[] = {0.0f, 0.5f, 1.0f};
    const json e4 = encode_matrix(col, 3, 1, 4);
    CHECK(e4["data"] == "CPA=");
    const auto back = decode_matrix(e4);
    CHECK(back[1] == doctest::Approx(8.0 / 15.0));
    // A constant column decodes exactly.
    const float flat[] = {0.25f, 0.25f};
    CHECK(decode_matrix(encode_matrix(flat, 2, 1, 4)) == std::vector<float>{0.25f, 0.25f});
    const float bad[] = {0.0f, NAN};
    CHECK(error_of([&] { encode_matrix(bad, 2, 1, 8); }).find("row 1, column 0") != std::string::npos);
    CHECK(error_of([&] { encode_matrix(m, 2, 2, 3); }).find("3 bits") != std::string::npos);
}

TEST_CASE("decode_matrix is within half a quantisation step of the original values") {
    std::mt19937 g(3);
    std::normal_distribution<float> n(0.0f, 2.0f);
    const std::size_t rows = 37, cols = 11;
    std::vector<float> v(rows * cols);
    for (float& x : v) x = n(g);
    for (int bits : {8, 4}) {
        const json e = encode_matrix(v.data(), rows, cols, bits);
        const auto back = decode_matrix(e);
        REQUIRE(back.size() == v.size());
        for (std::size_t c = 0; c < cols; ++c) {
            const double step = (e["max"][c].get<double>() - e["min"][c].get<double>()) / ((1 << bits) - 1);
            for (std::size_t r = 0; r < rows; ++r) CHECK(std::fabs(back[r * cols + c] - v[r * cols + c]) <= step / 2 + 1e-5);
        }
    }
}

TEST_CASE("validate_report accepts a document with every section and names the field of each error") {
    CHECK_NOTHROW(validate_report(full_doc()));
    const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
        {[](json& d) { d.erase("runs"); }, "runs: missing"},
        {[](json& d) { d["format"] = "other"; }, "format: expected \"xtgrad-report\""},
        {[](json& d) { d["version"] = 2; }, "version: expected 1"},
        {[](json& d) { d["runs"] = json::array(); }, "runs: expected at least 1 entries"},
        {[](json& d) { d["runs"][0]["name"] = ""; }, "runs[0].name: empty"},
        {[](json& d) { d["runs"][0]["gradient_flows"] = 1; }, "runs[0].gradient_flows: unknown field"},
        {[](json& d) { d["runs"][0]["curves"]["train"][1]["loss"] = "x"; }, "runs[0].curves.train[1].loss: expected a number or null"},
        {[](json& d) { d["runs"][0]["curves"]["train"][1]["batch"] = 3; }, "runs[0].curves.train[1].batch: batch 3 is past"},
        {[](json& d) { d["runs"][0]["curves"]["train"][0]["clip_fraction"] = 1.5; }, "clip_fraction: 1.5 is outside [0, 1]"},
        {[](json& d) { d["runs"][0]["gradient_flow"]["norms"][0][1] = -1; }, "runs[0].gradient_flow.norms[0][1]: -1 is outside"},
        {[](json& d) { d["runs"][0]["gate_saturation"]["gates"][0]["right"] = {0.1}; }, "gates[0].right: expected 2 numbers, got 1"},
        {[](json& d) { d["runs"][0].erase("passage"); }, "runs[0].units: needs the run's \"passage\""},
        {[](json& d) { d["runs"][0]["passage"]["level"] = "byte"; }, "runs[0].passage.level: 'byte' is neither"},
        {[](json& d) { d["runs"][0]["passage"]["tokens"].push_back("d"); }, "values.rows: 4 rows, but the passage has 5 tokens"},
        {[](json& d) { d["runs"][0]["units"]["layers"][0]["size"] = 3; }, "values.cols: 2 columns, but the layer has 3 units"},
        {[](json& d) { d["runs"][0]["units"]["layers"][0]["kinds"][0]["values"]["data"] = "AAAA"; }, "values.data: 3 bytes for 4 x 2 u8 values, expected 8"},
        {[](json& d) { d["runs"][0]["units"]["layers"][0]["kinds"][0]["values"]["data"] = "AA*A"; }, "values.data: base64 text: bad character"},
        {[](json& d) { d["runs"][0]["units"]["layers"][0]["kinds"][0]["values"]["min"][0] = 5; }, "values.min[0]: min is above max"},
        {[](json& d) { d["runs"][0]["units"]["top"][0]["unit"] = 7; }, "runs[0].units.top[0].unit: unit 7 is out of range"},
        {[](json& d) { d["runs"][0]["units"]["top"][0]["kind"] = "c"; }, "layer 0 kind 'c' is not among the recorded layers"},
        {[](json& d) { d["runs"][0]["units"]["probes"][0]["values"] = {1, 2}; }, "probes[0].values: expected 4 numbers, got 2"},
        {[](json& d) { d["runs"][0]["surprisal"]["loss"] = {1, 2, 3}; }, "runs[0].surprisal.loss: expected 4 numbers, got 3"},
        {[](json& d) { d["runs"][0]["surprisal"]["top"][1][0] = {"b"}; }, "runs[0].surprisal.top[1][0]: expected [token, probability]"},
        {[](json& d) { d["runs"][0]["embeddings"]["points"]["x"] = {1}; }, "embeddings.points.x: expected 2 numbers, got 1"},
        {[](json& d) { d["runs"][0]["samples"]["items"] = json::array(); }, "samples.items: expected at least 1 entries"},
        {[](json& d) { d["runs"][0]["attention"]["maps"][0]["keys"][1] = 4; }, "maps[0].keys[1]: token 4 is past the passage's 4 tokens"},
        {[](json& d) { d["runs"][0]["attention"]["maps"][0]["weights"][1] = {0.5}; }, "maps[0].weights[1]: expected 2 numbers, got 1"},
        {[](json& d) { d["runs"][0]["timing"]["other"][0].erase("seconds"); }, "timing.other[0].seconds: missing"},
        {[](json& d) { d["runs"][0]["card"]["config"]["bad"] = {{"nested", 1}}; }, "card.config.bad: expected a string, number"},
    };
    for (const auto& [mutate, message] : cases) {
        json d = full_doc();
        mutate(d);
        const std::string e = error_of([&] { validate_report(d); });
        INFO("expected: " << message << "\ngot: " << e);
        CHECK(e.find(message) != std::string::npos);
        CHECK_THROWS_AS(render_report(d), ReportError);
    }
}

TEST_CASE("render_report writes one page with the data inlined safely and nothing loaded from outside") {
    json doc = full_doc();
    // Strings that would end the script element, open a comment, or are not UTF-8 at all.
    doc["runs"][0]["passage"]["tokens"] = {"</script><script>alert(1)</script>", "<!--", "a&amp;b\xE2\x80\xA8", "bad\xFFutf8"};
    doc["runs"][0]["card"]["parameters"] = 123456789.0;
    doc["runs"][0]["curves"]["train"][0]["loss"] = static_cast<double>(0.1f);  // 0.100000001490116...
    const std::string page = render_report(doc);

    CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(page.find("Content-Security-Policy") != std::string::npos);
    CHECK(page.find("default-src 'none'") != std::string::npos);
    CHECK(page.find("<title>a &lt;test&gt; &amp; &quot;title&quot; \xE2\x80\x94 xtgrad report</title>") != std::string::npos);
    // The three assets are inline: boot script, report script, style.
    CHECK(page.find("window.__xtgrad =") != std::string::npos);
    CHECK(page.find("function renderUnits") != std::string::npos);
    CHECK(page.find("--mono:") != std::string::npos);
    // Exactly the closing tags the page needs: 3 scripts; the data's own "</script>" is escaped.
    std::size_t closes = 0;
    for (std::size_t at = page.find("</script>"); at != std::string::npos; at = page.find("</script>", at + 1)) ++closes;
    CHECK(closes == 3);
    CHECK(page.find("<!--") == std::string::npos);

    const json back = inlined(page);
    const json& toks = back["runs"][0]["passage"]["tokens"];
    CHECK(toks[0] == "</script><script>alert(1)</script>");
    CHECK(toks[1] == "<!--");
    CHECK(toks[2] == "a&amp;b\xE2\x80\xA8");
    CHECK(toks[3] == "bad\xEF\xBF\xBDutf8");  // the invalid byte became U+FFFD
    CHECK(back["runs"][0]["card"]["parameters"].get<double>() == 123457000.0);  // 6 significant digits
    CHECK(back["runs"][0]["curves"]["train"][0]["loss"].get<double>() == 0.1);
    // Encoded matrices pass through unchanged, their float bounds rounded to 6 digits.
    const json &m0 = back["runs"][0]["units"]["layers"][0]["kinds"][0]["values"], &m1 = doc["runs"][0]["units"]["layers"][0]["kinds"][0]["values"];
    CHECK(m0["data"] == m1["data"]);
    CHECK(m0["min"][0].get<double>() == 0.1);
    CHECK(m0["max"][1].get<double>() == -0.2);
}

TEST_CASE("the page's script and style reference nothing outside the file") {
    const std::string page = render_report(full_doc());
    const auto data_at = page.find("id=\"report-data\">");
    const std::string code = page.substr(0, data_at) + page.substr(page.find("</script>", data_at));
    for (const char* api : {"fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon", "import(", "@import", "src=",
                            "<link rel=\"stylesheet\"", "<iframe", "//cdn", "navigator.serviceWorker", "Worker("}) {
        INFO(api);
        CHECK(code.find(api) == std::string::npos);
    }
    // "http" appears only as the SVG namespace name (and in the http-equiv of the policy); "url(" only for in-page fragments (clip paths).
    for (std::size_t at = code.find("http"); at != std::string::npos; at = code.find("http", at + 1)) {
        INFO(code.substr(at, 30));
        CHECK((code.compare(at, 26, "http://www.w3.org/2000/svg") == 0 || code.compare(at, 11, "http-equiv=") == 0));
    }
    for (std::size_t at = code.find("url("); at != std::string::npos; at = code.find("url(", at + 1))
        CHECK(code.compare(at, 5, "url(#") == 0);
    // Links are fragments of the page (and the favicon is empty data, so the browser asks for none).
    for (std::size_t at = code.find("href"); at != std::string::npos; at = code.find("href", at + 1)) {
        const std::string next = code.substr(at, 14);
        INFO(next);
        CHECK((next.find("href=\"data:,\"") == 0 || next.find("href: '#") == 0));
    }
}

TEST_CASE("write_report names the file it cannot write") {
    CHECK(error_of([] { write_report("/nonexistent-dir/r.html", full_doc()); }).find("/nonexistent-dir/r.html: cannot write") != std::string::npos);
}

TEST_CASE("curves_from_metrics reads the train, epoch and test events and keeps the latest after a resume") {
    std::istringstream log(
        R"({"event":"train","epoch":1,"batch":200,"batches":600,"lr":20,"loss":6.5,"ppl":665.1,"grad_norm":1.2}
{"event":"train","epoch":1,"batch":400,"batches":600,"lr":20,"loss":6.0,"ppl":403.4,"grad_norm":0.9}

{"event":"train","epoch":1,"batch":400,"batches":600,"lr":20,"loss":5.9,"ppl":365.0,"grad_norm":0.8}
{"event":"resumed","batch":400}
{"event":"train","epoch":1,"batch":600,"batches":600,"lr":20,"loss":5.7,"ppl":298.9,"grad_norm":0.7}
{"event":"epoch","epoch":1,"time_s":12.5,"val_loss":5.6,"val_ppl":270.4,"lr":20}
{"event":"test","split":"test","loss":5.5,"ppl":244.7,"best_val_loss":5.6}
)");
    const json c = curves_from_metrics(log, "run.metrics.jsonl");
    REQUIRE(c["train"].size() == 3);
    CHECK(c["train"][1]["loss"] == 5.9);  // the resumed run's entry replaced the first one at batch 400
    CHECK(c["train"][2]["batch"] == 600);
    REQUIRE(c["epochs"].size() == 1);
    CHECK(c["epochs"][0]["val_ppl"] == 270.4);
    CHECK(c["test"]["ppl"] == 244.7);
    CHECK_NOTHROW(validate_report({{"format", "xtgrad-report"}, {"version", 1}, {"runs", {{{"name", "r"}, {"curves", c}}}}}));

    std::istringstream broken("{\"event\":\"train\",\"epoch\":1,\"batch\":1,\"batches\":2}\n\n{not json\n");
    CHECK(error_of([&] { curves_from_metrics(broken, "m.jsonl"); }).find("m.jsonl:3: not a JSON line") != std::string::npos);
    std::istringstream no_batch("{\"event\":\"train\",\"epoch\":1}\n");
    CHECK(error_of([&] { curves_from_metrics(no_batch, "m.jsonl"); }).find("m.jsonl:1: \"train\" event without") != std::string::npos);
}

TEST_CASE("text_probes follow lines, quotes, brackets, sentences and frequency by hand") {
    const std::vector<std::string> toks = {"the", "\"", "big", "\"", "(", "a", ")", ".", "x", "<eos>", "y"};
    const std::map<std::string, double> counts = {{"the", 99.0}, {"x", 0.0}};
    const auto p = text_probes(toks, "word", &counts);
    REQUIRE(p.size() == 5);
    CHECK(p[0].name == "position in line");
    CHECK(p[0].values == std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0});
    CHECK(p[1].name == "inside quotes");
    CHECK(p[1].values == std::vector<double>{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK(p[2].name == "inside brackets");
    CHECK(p[2].values == std::vector<double>{0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0});
    CHECK(p[3].name == "tokens since full stop");
    CHECK(p[3].values == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
    CHECK(p[4].values[0] == doctest::Approx(std::log(100.0)));
    CHECK(p[4].values[8] == 0.0);
    CHECK(p[4].values[2] == 0.0);  // not counted
    // Character level: "\n" ends a line; a quote left open is closed by the line end.
    const auto c = text_probes({"a", "\"", "b", "\n", "c"}, "char");
    CHECK(c.size() == 4);
    CHECK(c[0].values == std::vector<double>{0, 1, 2, 3, 0});
    CHECK(c[1].values == std::vector<double>{0, 1, 1, 0, 0});
    CHECK_THROWS_AS(text_probes(toks, "byte"), ReportError);
}

TEST_CASE("rank_units finds the units that follow a probe, with Pearson's r") {
    // 4 tokens x 4 units: unit 0 = probe, unit 1 = -2 probe, unit 2 constant, unit 3 = [1, 2, 3, 4].
    const TextProbe probe{"p", {1, 3, 2, 4}};
    const std::vector<float> a = {1, -2, 5, 1, 3, -6, 5, 2, 2, -4, 5, 3, 4, -8, 5, 4};
    const std::vector<ActivationView> views = {{1, "c", 4, 4, a.data()}};
    const auto all = rank_units(views, {probe}, 10, 10);
    REQUIRE(all.size() == 3);  // the constant unit says nothing
    CHECK(std::fabs(all[0].r) == doctest::Approx(1.0));
    CHECK(std::fabs(all[1].r) == doctest::Approx(1.0));
    CHECK(((all[0].unit == 0 && all[0].r > 0) || (all[0].unit == 1 && all[0].r < 0)));
    CHECK(all[2].unit == 3);
    CHECK(all[2].r == doctest::Approx(0.8));  // deviations (-1.5,-.5,.5,1.5).(-1.5,.5,-.5,1.5) = 4, over 5
    CHECK(all[2].layer == 1);
    CHECK(all[2].kind == "c");
    CHECK(all[2].probe == "p");
    CHECK(rank_units(views, {probe}, 10, 1).size() == 1);  // per probe
    CHECK(rank_units(views, {probe, TextProbe{"q", {4, 2, 3, 1}}}, 2, 5).size() == 2);  // in all
    // Each unit of a layer once: q = 5 - p follows the same units, so it adds none.
    CHECK(rank_units(views, {probe, TextProbe{"q", {4, 2, 3, 1}}}, 10, 5).size() == 3);
    // The same values as another kind of the same layer add no unit; in another layer they do.
    CHECK(rank_units({views[0], {1, "h", 4, 4, a.data()}}, {probe}, 10, 10).size() == 3);
    CHECK(rank_units({views[0], {0, "h", 4, 4, a.data()}}, {probe}, 10, 10).size() == 6);
    CHECK(rank_units(views, {TextProbe{"flat", {1, 1, 1, 1}}}).empty());
    CHECK(error_of([&] { rank_units(views, {TextProbe{"short", {1, 2, 3}}}); }).find("probe 'short' has 3 values") != std::string::npos);
    CHECK(units_top_json(all)[2] == json({{"probe", "p"}, {"layer", 1}, {"kind", "c"}, {"unit", 3}, {"r", all[2].r}}));
}

TEST_CASE("saturation counts the rows below low and above high per column") {
    const float g[] = {0.05f, 0.5f, 0.95f, 0.5f, 0.5f, 0.99f, 0.01f, 0.5f};  // 4 rows x 2 columns
    const Saturation s = saturation(g, 4, 2);
    CHECK(s.left == std::vector<double>{0.5, 0.0});
    CHECK(s.right == std::vector<double>{0.25, 0.25});
}

TEST_CASE("pca_2d recovers known principal axes in a rotated basis") {
    // Points at +-3 e1, +-2 e2, +-1 e3 (variances 18, 8, 2 out of 28), in a basis rotated by a Householder reflection.
    const std::size_t D = 4;
    std::vector<std::vector<double>> pts;
    for (double s : {1.0, -1.0}) {
        pts.push_back({3 * s, 0, 0, 0});
        pts.push_back({0, 2 * s, 0, 0});
        pts.push_back({0, 0, 1 * s, 0});
    }
    const double v[D] = {0.5, 0.5, 0.5, -0.5};  // unit vector: H = I - 2 v v^T
    std::vector<float> table;
    for (const auto& p : pts) {
        double dot = 0;
        for (std::size_t d = 0; d < D; ++d) dot += v[d] * p[d];
        for (std::size_t d = 0; d < D; ++d) table.push_back(static_cast<float>(p[d] - 2 * dot * v[d]));
    }
    const Projection pr = pca_2d(table.data(), pts.size(), D, {0, 1, 2, 3, 4, 5});
    CHECK(pr.explained[0] == doctest::Approx(18.0 / 28.0).epsilon(1e-4));
    CHECK(pr.explained[1] == doctest::Approx(8.0 / 28.0).epsilon(1e-4));
    const double xs[] = {3, 0, 0, -3, 0, 0}, ys[] = {0, 2, 0, 0, -2, 0};
    const double sx = pr.x[0] > 0 ? 1 : -1, sy = pr.y[1] > 0 ? 1 : -1;  // each axis up to its sign
    for (std::size_t i = 0; i < 6; ++i) {
        CHECK(sx * pr.x[i] == doctest::Approx(xs[i]).epsilon(1e-4));
        CHECK(sy * pr.y[i] == doctest::Approx(ys[i]).epsilon(1e-4));
    }
    CHECK(error_of([&] { pca_2d(table.data(), 6, D, {0, 1}); }).find("2 rows, at least 3") != std::string::npos);
    CHECK(error_of([&] { pca_2d(table.data(), 6, D, {0, 1, 9}); }).find("row 9 is out of range") != std::string::npos);
}

TEST_CASE("nearest_rows ranks rows by cosine similarity") {
    const float t[] = {1, 0, 0.9f, 0.1f, 0, 1, -1, 0, 0, 0};
    const auto n = nearest_rows(t, 5, 2, 0, 3);
    REQUIRE(n.size() == 3);
    CHECK(n[0].first == 1);
    CHECK(n[0].second == doctest::Approx(0.9 / std::sqrt(0.82)));
    CHECK(n[1].first == 2);
    CHECK(n[1].second == doctest::Approx(0.0));
    CHECK(n[2].first == 3);
    CHECK(n[2].second == doctest::Approx(-1.0));
    CHECK(nearest_rows(t, 5, 2, 0, 10).size() == 3);  // the zero row has no direction
    CHECK_THROWS_AS(nearest_rows(t, 5, 2, 5, 1), ReportError);
}

TEST_CASE("timing_ops_json lists a tape profile by total time") {
    std::map<std::string, OpTiming> p = {{"a (1 x 1)", {1.0, 0.5, 2}}, {"b (1 x 1)", {0.1, 3.0, 4}}, {"c (1 x 1)", {0.2, 0.1, 1}}};
    const json ops = timing_ops_json(p);
    REQUIRE(ops.size() == 3);
    CHECK(ops[0]["name"] == "b (1 x 1)");
    CHECK(ops[1]["name"] == "a (1 x 1)");
    CHECK(ops[1]["calls"] == 2);
    CHECK(ops[1]["backward_s"] == 0.5);
}

TEST_CASE("chrome_trace writes complete events with the fields chrome://tracing and Perfetto need") {
    std::vector<TraceSpan> spans = {{"backward", "train", 120.0, 200.0, 1, 1, {}},
                                    {"batch", "train", 0.0, 330.0, 1, 1, {{"batch", "1"}}},
                                    {"forward \"quoted\"", "train", 0.0, 120.0, 1, 2, {}}};
    const json doc = json::parse(chrome_trace(spans, "xtgrad-lm", {{1, "main"}, {2, "helper"}}).dump());
    CHECK(doc["displayTimeUnit"] == "ms");
    const json& ev = doc["traceEvents"];
    REQUIRE(ev.is_array());
    std::vector<json> complete, meta;
    for (const json& e : ev) (e["ph"] == "X" ? complete : meta).push_back(e);
    REQUIRE(complete.size() == 3);
    for (const json& e : complete)
        for (const char* k : {"name", "cat", "ph", "ts", "dur", "pid", "tid"}) CHECK(e.contains(k));
    // Start order, the enclosing span before the one it contains when both start at 0.
    CHECK(complete[0]["name"] == "batch");
    CHECK(complete[0]["dur"] == 330.0);
    CHECK(complete[0]["args"]["batch"] == "1");
    CHECK(complete[1]["name"] == "forward \"quoted\"");
    CHECK(complete[1]["tid"] == 2);
    CHECK(complete[2]["ts"] == 120.0);
    REQUIRE(meta.size() == 3);
    CHECK(meta[0]["name"] == "process_name");
    CHECK(meta[0]["args"]["name"] == "xtgrad-lm");
    CHECK(meta[1]["name"] == "thread_name");
    CHECK(meta[2]["args"]["name"] == "helper");

    CHECK(error_of([] { chrome_trace({{"x", "c", -1.0, 1.0, 1, 1, {}}}); }).find("trace span 0 'x': start -1") != std::string::npos);
    CHECK(error_of([] { chrome_trace({{"x", "c", 0.0, 1.0, 1, 1, {}}, {"y", "c", 0.0, NAN, 1, 1, {}}}); }).find("trace span 1 'y': duration") != std::string::npos);
    CHECK(error_of([] { chrome_trace({{"", "c", 0.0, 1.0, 1, 1, {}}}); }).find("empty name") != std::string::npos);
}

TEST_CASE("write_chrome_trace writes a file that parses, and names the file it cannot write") {
    const std::string path = "test_report_trace.json";
    write_chrome_trace(path, {{"step", "train", 5.0, 7.5, 1, 1, {}}});
    std::ifstream f(path);
    const json doc = json::parse(f);
    CHECK(doc["traceEvents"][0]["name"] == "step");
    CHECK(doc["traceEvents"][0]["dur"] == 7.5);
    std::remove(path.c_str());
    CHECK(error_of([] { write_chrome_trace("/nonexistent-dir/t.json", {}); }).find("/nonexistent-dir/t.json: cannot write") != std::string::npos);
}

TEST_CASE("TraceRecorder nests spans in time") {
    TraceRecorder rec;
    rec.begin("outer");
    rec.begin("inner", "op", 3);
    CHECK(rec.open() == 2);
    rec.end();
    rec.end();
    REQUIRE(rec.spans().size() == 2);
    const TraceSpan &inner = rec.spans()[0], &outer = rec.spans()[1];
    CHECK(inner.name == "inner");
    CHECK(inner.category == "op");
    CHECK(inner.tid == 3);
    CHECK(outer.start_us <= inner.start_us);
    CHECK(inner.start_us + inner.duration_us <= outer.start_us + outer.duration_us);
    CHECK_THROWS_AS(rec.end(), ConfigError);
}
