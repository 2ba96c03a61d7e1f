// apps/lm/data and evaluation: the PyTorch example's tokenisation, vocabulary order, batching and perplexity,
// on a tiny hand-made corpus; WikiText-2's published counts when the shared data is there.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

std::string write_corpus(const std::string& train, const std::string& valid, const std::string& test) {
    char tmpl[] = "/tmp/xtgrad-corpus-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/train.txt", std::ios::binary) << train;
    std::ofstream(dir + "/valid.txt", std::ios::binary) << valid;
    std::ofstream(dir + "/test.txt", std::ios::binary) << test;
    return dir;
}

std::vector<std::string> words_of(const Corpus& c, const Ids& ids) {
    std::vector<std::string> w;
    for (auto id : ids) w.push_back(c.vocab.token(id));
    return w;
}

}  // namespace

TEST_CASE("word level: line.split() + <eos>, vocabulary in first-appearance order over train, valid, test") {
    const std::string dir = write_corpus(" the cat \n\n a\tcat\r\nsat", "dog the\n", " new words \n");
    const Corpus c = load_word_corpus(dir);
    CHECK(words_of(c, c.train) ==
          std::vector<std::string>{"the", "cat", "<eos>", "<eos>", "a", "cat", "<eos>", "sat", "<eos>"});
    CHECK(c.vocab.tokens() == std::vector<std::string>{"the", "cat", "<eos>", "a", "sat", "dog", "new", "words"});
    CHECK(c.valid == Ids{5, 0, 2});
    CHECK(c.test == Ids{6, 7, 2});
    CHECK(split_words("a\xc2\xa0" "b\xe2\x80\x83" "c \x0b d") == std::vector<std::string>{"a", "b", "c", "d"});  // NBSP, em space, VT
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("batchify and get_batch: columns of the stream, time-major windows, the last one shorter") {
    Ids ids(23);
    for (int k = 0; k < 23; ++k) ids[k] = k;
    const Batched b = batchify(ids, 4);  // 5 steps x 4 columns; 3 tokens dropped
    CHECK(b.steps == 5);
    // PyTorch: data.view(bsz, -1).t(): column j holds tokens j*5 .. j*5+4
    CHECK(b.at(0, 0) == 0);
    CHECK(b.at(0, 1) == 5);
    CHECK(b.at(4, 3) == 19);
    Ids in, tg;
    CHECK(get_batch(b, 0, 3, in, tg) == 3);
    CHECK(in == Ids{0, 5, 10, 15, 1, 6, 11, 16, 2, 7, 12, 17});
    CHECK(tg == Ids{1, 6, 11, 16, 2, 7, 12, 17, 3, 8, 13, 18});
    CHECK(get_batch(b, 3, 3, in, tg) == 1);  // min(bptt, steps - 1 - i)
    CHECK(in == Ids{3, 8, 13, 18});
    CHECK(tg == Ids{4, 9, 14, 19});
    CHECK_THROWS_AS(get_batch(b, 4, 3, in, tg), IndexError);
}

TEST_CASE("evaluate: per-token mean over every target of the split, windows weighted by their length") {
    // A model whose decoder ignores its input (weight 0, bias b) predicts softmax(b) everywhere, so the exact
    // answer is the mean of -log softmax(b)[t] over every target: rows 1 .. steps-1 of the batchified split.
    std::string text;
    for (int l = 0; l < 12; ++l) text += " a b c d e a b \n";
    const std::string dir = write_corpus(text, text, text);
    const Corpus c = load_word_corpus(dir);
    LMConfig cfg;
    cfg.vocab = c.vocab.size();
    cfg.emsize = cfg.nhid = 6;
    Rng rng(2);
    RNNLM model(cfg, builtin_cell(CellType::lstm), rng);
    model.decoder.weight.value.fill(0.0f);
    for (std::size_t v = 0; v < cfg.vocab; ++v) model.decoder.bias.value(0, v) = 0.3f * static_cast<float>(v % 4) - 0.5f;
    double lse = 0.0;
    for (std::size_t v = 0; v < cfg.vocab; ++v) lse += std::exp(static_cast<double>(model.decoder.bias.value(0, v)));
    lse = std::log(lse);
    const Batched data = batchify(c.valid, 3);
    double want = 0.0;
    for (std::size_t t = 1; t < data.steps; ++t)
        for (std::size_t b = 0; b < 3; ++b) want += lse - model.decoder.bias.value(0, static_cast<std::size_t>(data.at(t, b)));
    want /= static_cast<double>((data.steps - 1) * 3);
    for (std::size_t bptt : {1, 5, 7, 100}) CHECK(evaluate(model, data, bptt) == doctest::Approx(want).epsilon(1e-6));
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("evaluate carries the state across windows: short windows score as one long window") {
    std::string text;
    for (int l = 0; l < 12; ++l) text += " a b c d e a b \n";
    const std::string dir = write_corpus(text, text, text);
    const Corpus c = load_word_corpus(dir);
    LMConfig cfg;
    cfg.vocab = c.vocab.size();
    cfg.emsize = cfg.nhid = 6;
    Rng rng(3);
    RNNLM model(cfg, builtin_cell(CellType::lstm), rng);
    const Batched data = batchify(c.valid, 3);
    const double whole = evaluate(model, data, data.steps);
    for (std::size_t bptt : {1, 4, 7}) CHECK(evaluate(model, data, bptt) == doctest::Approx(whole).epsilon(1e-5));
    // a state reset at every window would be a different model: the check above can fail
    Tape t;
    Rng unused(0);
    Ctx ctx{t, unused, false};
    Ids in, tg;
    double reset = 0.0;
    for (std::size_t i = 0; i + 1 < data.steps; i += 4) {
        const std::size_t n = get_batch(data, i, 4, in, tg);
        t.clear();
        reset += static_cast<double>(n) * model.loss(ctx, model.features(ctx, in, 3, {}).y, tg).value()(0, 0);
    }
    CHECK(reset / static_cast<double>(data.steps - 1) != doctest::Approx(whole).epsilon(1e-5));
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("bad corpora: missing splits, empty files, invalid UTF-8 name the file and line") {
    const std::string dir = write_corpus("ok\n", "", "ok\n");
    CHECK_THROWS_WITH_AS(load_word_corpus(dir), doctest::Contains("valid.txt: file is empty"), FileError);
    std::ofstream(dir + "/valid.txt") << "line one\nbad \xff byte\n";
    CHECK_THROWS_WITH_AS(load_word_corpus(dir), doctest::Contains("valid.txt:2: invalid UTF-8 at byte 13 (0xff)"), FileError);
    std::system(("rm " + dir + "/test.txt").c_str());
    CHECK_THROWS_WITH_AS(load_word_corpus(dir), doctest::Contains("test.txt is missing"), FileError);
    CHECK_THROWS_WITH_AS(load_word_corpus(dir + "/nope"), doctest::Contains("data directory not found"), FileError);
    CHECK_THROWS_WITH_AS(load_char_corpus(dir + "/nope.txt"), doctest::Contains("file not found"), FileError);
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("char level: code points, 90/10 split, valid doubles as test") {
    char tmpl[] = "/tmp/xtgrad-char-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/input.txt") << "h\xc3\xa9llo w\xc3\xb6rld, hello world!\n";
    const Corpus c = load_char_corpus(dir);
    CHECK(c.vocab.token(1) == "\xc3\xa9");
    CHECK(c.train.size() + c.valid.size() == 26);
    CHECK(c.train.size() == 23);  // floor(26 * 0.9)
    CHECK(c.test == c.valid);
    CHECK(c.test_name == "valid");
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("WikiText-2 from ../shared/data: the published token counts and vocabulary size") {
    const char* root = std::getenv("XTGRAD_DATA");
    const std::string dir = std::string(root ? root : "../shared/data") + "/wikitext-2";
    std::ifstream probe(dir + "/train.txt");
    if (!probe) {
        MESSAGE("skipped: no WikiText-2 at " << dir);
        return;
    }
    const Corpus c = load_word_corpus(dir);
    CHECK(c.train.size() == 2088628);
    CHECK(c.valid.size() == 217646);
    CHECK(c.test.size() == 245569);
    CHECK(c.vocab.size() == 33278);
    CHECK(batchify(c.train, 20).steps == 104431);
}

TEST_CASE("finding 8: a vocabulary read back rejects a token repeated, also right after itself") {
    CHECK(Vocab::from_tokens({"a", "b", "c"}).size() == 3);
    CHECK_THROWS_WITH_AS(Vocab::from_tokens({"a", "a"}), doctest::Contains("'a' appears twice (at 0 and 1)"), ConfigError);
    CHECK_THROWS_WITH_AS(Vocab::from_tokens({"a", "b", "a"}), doctest::Contains("'a' appears twice"), ConfigError);
}

TEST_CASE("continuous cache: a hand-computed case, the model's own loss without it, a grid search") {
    // Hidden states all zero: every cache entry weighs the same, so p_cache(w) = share of w among the cached words.
    CacheTrace tr;
    tr.streams = 1;
    tr.positions = 4;
    tr.width = 2;
    tr.hidden = {Array({4, 2}, 0.0f)};
    tr.targets = {{7, 3, 7, 7}};                   // a b a a
    tr.model_logp = {{std::log(0.5), std::log(0.25), std::log(0.1), std::log(0.2)}};
    const double lambda = 0.3;
    // size 2: t=0 no cache; t=1 cache {a}: p(b) = 0; t=2 cache {a, b}: p(a) = 1/2; t=3 cache {b, a}: p(a) = 1/2
    const double want = -(std::log(0.5) + std::log(0.7 * 0.25) + std::log(0.7 * 0.1 + 0.3 * 0.5) +
                          std::log(0.7 * 0.2 + 0.3 * 0.5)) / 4;
    CHECK(cache_loss(tr, {2, 0.3, lambda}) == doctest::Approx(want).epsilon(1e-12));
    CHECK(cache_loss(tr, {0, 0.3, lambda}) == doctest::Approx(-(std::log(0.5) + std::log(0.25) + std::log(0.1) +
                                                                 std::log(0.2)) / 4).epsilon(1e-12));
    // a large theta puts the cache's mass on the most similar state: here the one that was followed by a
    tr.hidden[0] = Array({4, 2}, 0.0f);
    tr.hidden[0](0, 0) = 1.0f;  // followed by a
    tr.hidden[0](1, 1) = 1.0f;  // followed by b
    tr.hidden[0](2, 0) = 1.0f;
    const double sharp = cache_loss(tr, {3, 50.0, 0.5});
    // t=2: h = e0 is nearest to h_0 (followed by a): p_cache(a) = 1; t=3: h = 0 weighs a, b, a alike: 2/3
    const double want_sharp = -(std::log(0.5) + std::log(0.5 * 0.25) + std::log(0.5 * 0.1 + 0.5 * 1.0) +
                                std::log(0.5 * 0.2 + 0.5 * 2.0 / 3.0)) / 4;
    CHECK(sharp == doctest::Approx(want_sharp).epsilon(1e-6));
    CHECK_THROWS_AS(cache_loss(tr, {2, 0.3, 1.5}), ConfigError);

    // On a real model: no cache gives exactly what evaluate() gives; the grid search finds its best point
    std::string text;
    for (int l = 0; l < 12; ++l) text += " a b c d e a b \n";
    const std::string dir = write_corpus(text, text, text);
    const Corpus c = load_word_corpus(dir);
    LMConfig cfg;
    cfg.vocab = c.vocab.size();
    cfg.emsize = cfg.nhid = 6;
    Rng rng(5);
    RNNLM model(cfg, builtin_cell(CellType::gru), rng);
    const Batched data = batchify(c.valid, 2);
    const CacheTrace real = trace_for_cache(model, data, 5);
    CHECK(cache_loss(real, {}) == doctest::Approx(evaluate(model, data, 5)).epsilon(1e-6));
    const CacheTuning t = tune_cache(real, 20, {0.1, 1.0}, {0.1, 0.5});
    CHECK(t.grid.size() == 4);
    for (const auto& p : t.grid) CHECK(t.best_loss <= p.loss);
    std::system(("rm -rf " + dir).c_str());
}
