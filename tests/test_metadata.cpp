// What a file claims is checked before use: MetaReader's strict readers, every setting of a model checkpoint
// (load_config, load_model), the optimiser's and schedules' saved state, and architectures a file cannot hold.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>

using namespace xtgrad;

namespace {

StateDict meta(std::initializer_list<std::pair<const std::string, std::string>> kv) {
    StateDict sd;
    sd.metadata = kv;
    return sd;
}

// Expects reading to throw FileError whose message contains `what`.
template <class F>
void refused(F&& read, const std::string& what) {
    INFO("expected an error containing: ", what);
    CHECK_THROWS_WITH_AS(read(), doctest::Contains(what.c_str()), FileError);
}

std::string tmpdir() {
    char tmpl[] = "/tmp/xtgrad-meta-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

}  // namespace

TEST_CASE("MetaReader: whole numbers in decimal digits only, within their bounds") {
    const StateDict sd = meta({{"zero", "0"}, {"max", "18446744073709551615"}, {"seven", "7"}});
    const MetaReader m(sd, "f.safetensors");
    CHECK(m.count("zero", 0, 1) == 0);
    CHECK(m.count("max", 0, ~0ull) == ~0ull);
    CHECK(m.count("seven", 7, 7) == 7);
    refused([&] { return m.count("seven", 8, 9); }, "f.safetensors: metadata 'seven' = 7 is outside [8, 9]");
    refused([&] { return m.count("absent", 0, 1); }, "f.safetensors: metadata 'absent' is missing");
    for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", "18446744073709551616", "1,2", "seven"}) {
        const StateDict b = meta({{"k", bad}});
        refused([&] { return MetaReader(b, "f").count("k", 0, ~0ull); }, fmt::format("metadata 'k' = '{}' is not a whole number", bad));
    }
    CHECK(MetaReader(meta({{"f", "1"}}), "f").flag("f"));
    refused([&] { return MetaReader(meta({{"f", "2"}}), "f").flag("f"); }, "'f' = 2 is outside [0, 1]");
    refused([&] { return MetaReader(meta({{"s", std::string(65, 'x')}}), "f").text("s", 64); },
            "metadata 's' is 65 bytes long, more than the 64 allowed");
}

TEST_CASE("MetaReader: reals are finite and written as JSON numbers; strtod's spaces, hex, nan and inf are not") {
    const StateDict sd = meta({{"a", "0.25"}, {"b", "1e-05"}, {"c", "-3"}, {"d", "20"}, {"e", "1.7976931348623157e+308"}});
    const MetaReader m(sd, "f");
    CHECK(m.real("a", 0, 1) == 0.25);
    CHECK(m.real("b", 0, 1) == 1e-5);
    CHECK(m.real("c", -5, 0) == -3.0);
    CHECK(m.real("d", 0, 100) == 20.0);
    CHECK(m.real("e", 0, 1.7976931348623157e308) == 1.7976931348623157e308);  // the largest double
    refused([&] { return m.real("d", 0, 10); }, "metadata 'd' = 20 is outside [0, 10]");
    for (const char* bad : {"", "nan", "NaN", "inf", "-inf", "infinity", "0x1p3", " 1", "1 ", "1e999", "1,5", "abc", "+1", ".5x"}) {
        const StateDict b = meta({{"k", bad}});
        refused([&] { return MetaReader(b, "f").real("k", -1e300, 1e300); }, fmt::format("metadata 'k' = '{}' is not a finite number", bad));
    }
}

TEST_CASE("MetaReader: lists of numbers and JSON lists and maps of strings") {
    const StateDict sd = meta({{"l", "3,1,2"}, {"empty", ""}, {"r", "0.5,-2,1e3"}, {"s", R"(["a","b","a"])"},
                               {"m", R"({"x":"1","y":"2"})"}});
    const MetaReader m(sd, "f");
    CHECK(m.list("l", 0, 9, 3) == std::vector<std::uint64_t>{3, 1, 2});
    CHECK(m.list("empty", 0, 9, 3).empty());
    CHECK(m.reals("r", -10, 1e3, 3) == std::vector<double>{0.5, -2.0, 1e3});
    CHECK(m.strings("s", 3) == std::vector<std::string>{"a", "b", "a"});
    CHECK(m.string_map("m", 2) == std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}});
    refused([&] { return m.list("l", 0, 9, 2); }, "metadata 'l' has more than 2 items");
    refused([&] { return m.list("l", 2, 9, 3); }, "metadata 'l' item 1 = 1 is outside [2, 9]");
    refused([&] { return m.reals("r", -1, 1e3, 3); }, "metadata 'r' item 1 = -2 is outside [-1, 1000]");
    refused([&] { return m.strings("s", 2); }, "more than 3 JSON values");
    refused([&] { return m.string_map("m", 1); }, "more than 2 JSON values");
    for (const char* bad : {"1,,2", "1,", ",1", "1;2", "1, 2"}) {
        const StateDict b = meta({{"k", bad}});
        refused([&] { return MetaReader(b, "f").list("k", 0, 9, 9); }, "is not a whole number");
        refused([&] { return MetaReader(b, "f").reals("k", 0, 9, 9); }, "is not a finite number");
    }
    refused([&] { return MetaReader(meta({{"k", "7.5,nan"}}), "f").reals("k", 0, 9, 9); }, "item 1 ('nan') is not a finite number");
    refused([&] { return MetaReader(meta({{"k", R"(["a",1])"}}), "f").strings("k", 9); }, "metadata 'k' item 1 is not a string");
    refused([&] { return MetaReader(meta({{"k", R"({"a":"1"})"}}), "f").strings("k", 9); }, "is not a JSON array of strings");
    refused([&] { return MetaReader(meta({{"k", R"(["a")"}}), "f.st").strings("k", 9); }, "f.st: metadata 'k': malformed JSON at byte");
    refused([&] { return MetaReader(meta({{"k", R"({"a":"1","a":"2"})"}}), "f").string_map("k", 9); }, "duplicate key \"a\"");
    refused([&] { return MetaReader(meta({{"k", R"({"a":1})"}}), "f").string_map("k", 9); }, "metadata 'k' 'a' is not a string");
    refused([&] { return MetaReader(meta({{"k", R"([["a"]])"}}), "f").strings("k", 9); }, "nesting deeper than 1");
}

namespace {

// A small adaptive-softmax LSTM's checkpoint metadata and weights, as save_model writes them.
struct Saved {
    std::string dir = tmpdir();
    std::string path = dir + "/m.safetensors";
    StateDict sd;
    Saved() {
        LMConfig c;
        c.vocab = 30;
        c.emsize = c.nhid = 8;
        c.cutoffs = {10, 20};
        Ids corpus;
        for (int k = 0; k < 200; ++k) corpus.push_back((k * 7) % 30);
        c.order = frequency_order(corpus, 30);
        c.cell_options.set("unused", "1");
        Rng rng(1);
        RNNLM model(c, builtin_cell(CellType::lstm), rng);
        std::vector<std::string> tokens;
        for (int k = 0; k < 30; ++k) tokens.push_back(fmt::format("w{}", k));
        save_model(path, model, Vocab::from_tokens(tokens), "word", "run");
        sd = load_safetensors(path);
    }
    ~Saved() { std::system(("rm -rf " + dir).c_str()); }
    // load_model on the checkpoint with metadata key set to value (or removed, for an empty value).
    LoadedModel with(const std::string& key, const std::string& value) const {
        StateDict b = sd;
        if (value.empty()) b.metadata.erase(key);
        else b.metadata[key] = value;
        save_safetensors(path, b);
        return load_model(path, builtin_registry(), nullptr, "");
    }
};

}  // namespace

TEST_CASE("a model checkpoint's every setting is checked against the limits and the architecture") {
    const Saved s;
    CHECK(s.with("model", "LSTM").model->config.cutoffs == std::vector<std::size_t>{10, 20});  // as saved: loads
    struct Case {
        const char* key;
        std::string value, what;
    };
    const std::vector<Case> cases = {
        {"model", "", "metadata 'model' is missing"},
        {"model", std::string(65, 'A'), "metadata 'model' is 65 bytes long"},
        {"model", "LSTMX", "the cell 'LSTMX', which xtgrad-lm does not know"},
        {"format", "xtgrad-lm/9", "metadata 'format' = 'xtgrad-lm/9' is not a format this program reads"},
        {"vocab_size", "0", "metadata 'vocab_size' = 0 is outside [1, 16777216]"},
        {"vocab_size", "31", "metadata 'order' has 30 entries for 31 tokens"},
        {"vocab_size", "-30", "'vocab_size' = '-30' is not a whole number"},
        {"emsize", "65537", "metadata 'emsize' = 65537 is outside [1, 65536]"},
        {"nhid", "0", "metadata 'nhid' = 0 is outside [1, 65536]"},
        {"nlayers", "1000000000", "metadata 'nlayers' = 1000000000 is outside [1, 64]"},
        {"nlayers", "2.0", "'nlayers' = '2.0' is not a whole number"},
        {"dropout", "1", "metadata 'dropout' = 1 is outside [0, 0.999999]"},
        {"dropout", "nan", "'dropout' = 'nan' is not a finite number"},
        {"tied", "2", "metadata 'tied' = 2 is outside [0, 1]"},
        {"weight_drop", "-0.1", "'weight_drop' = -0.1 is outside"},
        {"dropouti", "1.5", "'dropouti' = 1.5 is outside"},
        {"dropoute", "inf", "'dropoute' = 'inf' is not a finite number"},
        {"locked_dropout", "yes", "'locked_dropout' = 'yes' is not a whole number"},
        {"alpha", "1e4", "'alpha' = 10000 is outside [0, 1000]"},
        {"cell_options", R"({"a":"1","a":"2"})", "metadata 'cell_options': duplicate key \"a\""},
        {"cell_options", R"(["a"])", "metadata 'cell_options' is not a JSON object of strings"},
        {"cutoffs", "20,10", "--cutoffs [20, 10] must increase strictly"},
        {"cutoffs", "10,30", "metadata 'cutoffs' item 1 = 30 is outside [1, 29]"},
        {"div_value", "0.5", "metadata 'div_value' = 0.5 is outside [1, 1000]"},
        {"order", "0,1,2", "metadata 'order' has 3 entries for 30 tokens"},
        {"order", "", "metadata 'order' is missing"},
        {"vocab", R"(["a","b"])", "vocabulary has 2 tokens but the model 30"},
        {"vocab", R"(["w0","w0"])", "'w0' appears twice"},
        {"vocab", "[1]", "metadata 'vocab' item 0 is not a string"},
        {"level", "byte", "metadata 'level' = 'byte' is not word or char"},
    };
    for (const Case& c : cases) {
        INFO(c.key, " = ", c.value);
        CHECK_THROWS_WITH_AS(s.with(c.key, c.value), doctest::Contains(c.what.c_str()), FileError);
    }
    // the order: a permutation of the token ids, entry by entry
    const std::string order = s.sd.metadata.at("order");
    const std::string rest = order.substr(order.find(','));
    CHECK_THROWS_WITH_AS(s.with("order", "30" + rest), doctest::Contains("metadata 'order' item 0 = 30 is outside [0, 29]"), FileError);
    CHECK_THROWS_WITH_AS(s.with("order", "2147483648" + rest), doctest::Contains("item 0 = 2147483648 is outside"), FileError);
    const std::string second = rest.substr(1, rest.find(',', 1) - 1);
    const std::string twice = "is not a permutation: rank " + second + " appears twice";
    CHECK_THROWS_WITH_AS(s.with("order", second + rest), doctest::Contains(twice.c_str()), FileError);
}

TEST_CASE("finding 4: a file claiming an architecture it cannot hold is refused before the model is built") {
    const Saved s;
    // 1,000,000,000 layers (17 s and then out of memory before): the bound of the command line
    CHECK_THROWS_WITH_AS(s.with("nlayers", "1000000000"), doctest::Contains("'nlayers' = 1000000000 is outside [1, 64]"), FileError);
    // widths inside the limits but far beyond the file's few thousand values: refused at the first parameter
    // that does not fit, before it is allocated (16 x 65536 LSTM layers would be 64 x 68 GB)
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{{"nhid", "65536"}, {"emsize", "65536"},
                                                                                  {"nlayers", "64"}}) {
        INFO(key, " = ", value);
        CHECK_THROWS_WITH_AS(s.with(key, value), doctest::Contains("values the file holds: parameter '"), FileError);
    }
    // a budget bounds any cell's parameters, the user's too; nested budgets: the inner one applies
    {
        const ParameterBudget outer(100, "outer");
        {
            const ParameterBudget inner(10, "inner");
            CHECK_THROWS_WITH_AS(Parameter("p", 3, 4), doctest::Contains("inner: parameter 'p' needs 12 values, more than the 10 left"),
                                 FileError);
            Parameter q("q", Array({2, 5}));
            CHECK_THROWS_WITH_AS(Parameter("r", Array({1, 1})), doctest::Contains("more than the 0 left"), FileError);
        }
        Parameter big_one("b", 10, 10);
        CHECK_THROWS_AS(Parameter("c", 1, 1), FileError);
    }
    Parameter free("f", 1000, 1000);  // no budget: anything
    CHECK(free.grad(999, 999) == 0.0f);
}

TEST_CASE("optimiser and schedule state from a file: every value checked") {
    Parameter w("w", Array({2, 2}, 1.0f));
    StateDict sd;
    NTASGD nt({&w}, 1.0);
    for (double v : {5.0, 4.0, 4.5, 4.2}) nt.observe(v);
    nt.step();
    nt.save_state(sd);
    PlateauLR plateau(20.0);
    plateau.save_state(sd);  // best is +inf before any validation: written "inf", read back as such
    CosineProgressLR cosine(1.0);
    cosine.set_progress(0.5);
    cosine.save_state(sd, "cos.");
    NTASGD back({&w}, 1.0);
    back.load_state(sd);
    PlateauLR pb(1.0);
    pb.load_state(sd);
    CHECK(std::isinf(pb.best()));
    CHECK(pb.lr() == 20.0);
    struct Case {
        std::string key, value, what;
    };
    const std::vector<Case> cases = {
        {"optim.step", "-1", "'optim.step' = '-1' is not a whole number"},
        {"optim.lr", "nan", "'optim.lr' = 'nan' is not a finite number"},
        {"optim.lr", "2e6", "'optim.lr' = 2000000 is outside [0, 1000000]"},
        {"optim.name", "adam", "saved by 'adam', cannot resume 'ntasgd'"},
        {"optim.triggered", "2", "'optim.triggered' = 2 is outside [0, 1]"},
        {"optim.averaged", "5", "'optim.averaged' = 5 is outside [0, 1]"},
        {"optim.history", "7.5,abc", "'optim.history' item 1 ('abc') is not a finite number"},
        {"optim.history", "7.5,inf", "item 1 ('inf') is not a finite number"},
        {"plateau.lr", "-1", "'plateau.lr' = -1 is outside [0, 1000000]"},
        {"plateau.best", "nan", "'plateau.best' = 'nan' is not a finite number"},
        {"plateau.bad", "-1", "'plateau.bad' = '-1' is not a whole number"},
        {"cos.progress", "1.5", "'cos.progress' = 1.5 is outside [0, 1]"},
    };
    for (const Case& c : cases) {
        INFO(c.key, " = ", c.value);
        StateDict b = sd;
        b.metadata[c.key] = c.value;
        CHECK_THROWS_WITH_AS(
            [&] {
                NTASGD o({&w}, 1.0);
                o.load_state(b);
                PlateauLR p(1.0);
                p.load_state(b);
                CosineProgressLR q(1.0);
                q.load_state(b, "cos.");
            }(),
            doctest::Contains(c.what.c_str()), FileError);
    }
}

TEST_CASE("the options a resume point records: typed, bounded, whole numbers whole, each key once") {
    const std::string good = train_options_to_json(TrainOptions{});
    CHECK(train_options_from_json(good, "r").bptt == 35);
    auto with = [&](const std::string& key, const std::string& value) {
        nlohmann::json j = nlohmann::json::parse(good);
        j[key] = nlohmann::json::parse(value);
        return j.dump();
    };
    struct Case {
        std::string text, what;
    };
    const std::vector<Case> cases = {
        {with("epochs", "2.5"), "r.safetensors: recorded option 'epochs' = 2.5 is not a whole number"},
        {with("bptt", "-1"), "recorded option 'bptt' = -1 is not a whole number"},
        {with("bptt", "1e3"), "recorded option 'bptt' = 1000.0 is not a whole number"},
        {with("lr", "0"), "recorded option 'lr' = 0 is outside (0, 1000000]"},
        {with("cutoffs", "[10,-1]"), "recorded option 'cutoffs' item -1 is not a whole number"},
        {with("cutoffs", "[1.5]"), "recorded option 'cutoffs' item 1.5 is not a whole number"},
        {with("cutoffs", "[[1]]"), "the recorded options: JSON nesting deeper than 2"},
        {with("optimizer", "3"), "recorded option 'optimizer' has the wrong type"},
        {good.substr(0, good.size() - 1) + R"(,"bptt":36})", "the recorded options: duplicate key \"bptt\""},
        {"[]", "the recorded options are not a JSON object"},
        {good.substr(0, good.size() - 1), "the recorded options: malformed JSON at byte"},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        CHECK_THROWS_WITH_AS(train_options_from_json(c.text, "r.safetensors"), doctest::Contains(c.what.c_str()), FileError);
    }
    nlohmann::json missing = nlohmann::json::parse(good);
    missing.erase("seed");
    CHECK_THROWS_WITH_AS(train_options_from_json(missing.dump(), "r"), doctest::Contains("recorded option 'seed' is missing"), FileError);
}
