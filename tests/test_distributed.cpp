// The parts of data-parallel training that need no second process: dropout masks keyed by the whole batch's
// streams, the tape's hook on final gradients, GradientSync's buckets (over a stand-in Comm), shares of a batch.
// The processes themselves are tested by test_mpi (under mpirun).
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include <xtgrad/lm.hpp>

using namespace xtgrad;

namespace {

// The rows [offset, offset + batch) of each of the T steps of a (T * global) x cols time-major array.
Array step_rows(const Array& whole, std::size_t global, std::size_t offset, std::size_t batch) {
    const std::size_t cols = whole.shape()[1], T = whole.shape()[0] / global;
    Array out({T * batch, cols});
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t j = 0; j < cols; ++j) out(t * batch + b, j) = whole(t * global + offset + b, j);
    return out;
}

LMConfig tiny_config(const std::string& cell) {
    LMConfig c;
    c.cell = cell;
    c.vocab = 40;
    c.emsize = c.nhid = 8;
    c.nlayers = 2;
    c.dropout = 0.3f;
    c.dropouth = 0.4f;
    c.dropoute = 0.2f;
    c.weight_drop = cell == "LSTM" ? 0.3f : 0.0f;
    return c;
}

Ids random_ids(std::size_t n, std::size_t vocab, std::uint64_t seed) {
    Rng r(seed);
    Ids ids(n);
    for (auto& id : ids) id = static_cast<std::int32_t>(r.below(vocab));
    return ids;
}

}  // namespace

TEST_CASE("dropout masks: a process holding streams [o, o + b) draws those rows of the whole batch's mask") {
    constexpr std::size_t T = 5, G = 6, H = 7;
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        Tape t;
        Var ones = t.constant({T * G, H}, 1.0f);
        Rng whole_rng(seed);
        Ctx whole{t, whole_rng, true};
        const Array full = Dropout(0.4f)(whole, ones, G).value();
        const Array locked_full = LockedDropout(0.4f)(whole, ones, G).value();
        for (const auto& [offset, batch] : {std::pair<std::size_t, std::size_t>{0, 3}, {3, 3}, {2, 2}, {5, 1}}) {
            Rng rng(seed);  // every process's generator is where the whole batch's is
            Ctx part{t, rng, true};
            part.row_offset = offset;
            part.global_batch = G;
            Var mine = t.constant({T * batch, H}, 1.0f);
            CHECK(Dropout(0.4f)(part, mine, batch).value() == step_rows(full, G, offset, batch));
            CHECK(LockedDropout(0.4f)(part, mine, batch).value() == step_rows(locked_full, G, offset, batch));
            CHECK(rng.state() == whole_rng.state());  // one draw per call, whatever the share
        }
    }
}

TEST_CASE("dropout masks: rate, and no correlation between neighbouring entries, rows or calls") {
    for (float p : {0.1f, 0.5f, 0.8f}) {
        for (std::uint64_t seed : {11u, 12u}) {
            constexpr std::size_t R = 300, C = 201;  // odd: the last column takes a draw of its own
            Array a({R, C}), b({R, C});
            fill_dropout_mask(a.data(), R, C, p, MaskKey{seed * 7919});
            fill_dropout_mask(b.data(), R, C, p, MaskKey{seed * 7919 + 1});
            std::size_t dropped = 0, both_cols = 0, both_rows = 0, both_calls = 0, pairs_c = 0, pairs_r = 0;
            for (std::size_t r = 0; r < R; ++r)
                for (std::size_t j = 0; j < C; ++j) {
                    const bool d = a(r, j) == 0.0f;
                    CHECK((d || a(r, j) == doctest::Approx(1.0f / (1.0f - p))));
                    dropped += d;
                    both_calls += d && b(r, j) == 0.0f;
                    if (j + 1 < C) {
                        ++pairs_c;
                        both_cols += d && a(r, j + 1) == 0.0f;  // j, j + 1: two halves of one draw when j is even
                    }
                    if (r + 1 < R) {
                        ++pairs_r;
                        both_rows += d && a(r + 1, j) == 0.0f;
                    }
                }
            const double n = R * C, sigma = std::sqrt(p * (1 - p) / n);
            CHECK(std::abs(static_cast<double>(dropped) / n - p) < 5 * sigma);
            const double pp = static_cast<double>(p) * p, s2 = std::sqrt(pp * (1 - pp) / n);
            CHECK(std::abs(static_cast<double>(both_cols) / pairs_c - pp) < 6 * s2);
            CHECK(std::abs(static_cast<double>(both_rows) / pairs_r - pp) < 6 * s2);
            CHECK(std::abs(static_cast<double>(both_calls) / n - pp) < 6 * s2);
        }
    }
}

TEST_CASE("dropout in a split batch: the stream must be known, and inside the batch") {
    Tape t;
    Rng rng(1);
    Ctx c{t, rng, true};
    c.row_offset = 2;
    c.global_batch = 4;
    Var x = t.constant({6, 3}, 1.0f);
    CHECK_THROWS_AS(Dropout(0.5f)(c, x), ConfigError);
    CHECK_THROWS_AS(Dropout(0.5f)(c, x, 3), ConfigError);  // streams [2, 5) of 4
    CHECK_THROWS_AS(Dropout(0.5f)(c, x, 4), ShapeError);   // 6 rows are no whole number of steps of 4
    CHECK_NOTHROW(Dropout(0.5f)(c, x, 2));
    Ctx eval{t, rng, false};
    eval.global_batch = 4;
    CHECK(Dropout(0.5f)(eval, x).index == x.index);
}

TEST_CASE("a language model's training forward pass over a share of the streams is the whole batch's, row for row") {
    constexpr std::size_t T = 4, G = 4;
    for (const char* cell : {"LSTM", "GRU"}) {
        for (bool locked : {false, true}) {
            LMConfig cfg = tiny_config(cell);
            cfg.locked = locked;
            Rng init(3);
            Registry reg = builtin_registry();
            auto model = reg.build(cfg, init);
            const Ids ids = random_ids(T * G, cfg.vocab, 5);
            Tape t;
            Rng whole_rng(9);
            Ctx whole{t, whole_rng, true};
            const RecurrentState zero = model->zero_state(G);
            const Array y = model->features(whole, ids, G, zero).y.value();
            for (const auto& [offset, batch] : {std::pair<std::size_t, std::size_t>{0, 2}, {2, 2}, {1, 1}}) {
                INFO(cell, locked ? " locked" : "", " streams ", offset, "+", batch);
                Ids mine;
                for (std::size_t s = 0; s < T; ++s)
                    for (std::size_t b = 0; b < batch; ++b) mine.push_back(ids[s * G + offset + b]);
                Tape tp;
                Rng rng(9);
                Ctx part{tp, rng, true};
                part.row_offset = offset;
                part.global_batch = G;
                const Array ym = model->features(part, mine, batch, model->zero_state(batch)).y.value();
                const Array want = step_rows(y, G, offset, batch);
                REQUIRE(ym.shape() == want.shape());
                for (std::size_t k = 0; k < ym.size(); ++k) {
                    CHECK((ym.data()[k] == 0.0f) == (want.data()[k] == 0.0f));  // the same entries dropped
                    CHECK(ym.data()[k] == doctest::Approx(want.data()[k]).epsilon(1e-5));
                }
            }
        }
    }
}

TEST_CASE("Tape::on_param_grad_final: once per parameter, when its gradient is final, in reverse order of use") {
    LMConfig cfg = tiny_config("LSTM");
    Rng init(4);
    auto model = builtin_registry().build(cfg, init);
    const std::vector<Parameter*> params = model->parameters();
    const Ids ids = random_ids(6 * 2, cfg.vocab, 6), targets = random_ids(6 * 2, cfg.vocab, 7);
    Tape t;
    std::vector<std::string> order;
    std::map<std::string, Array> at_hook;
    t.on_param_grad_final([&](Parameter& p) {
        order.push_back(p.name);
        at_hook[p.name] = p.grad;
    });
    Rng rng(2);
    Ctx c{t, rng, true};
    for (Parameter* p : params) p->zero_grad();
    const LMFeatures f = model->features(c, ids, 2, model->zero_state(2));
    t.backward(model->loss(c, f.y, targets));
    REQUIRE(order.size() == params.size());
    for (Parameter* p : params) {
        INFO(p->name);
        REQUIRE(at_hook.count(p->name) == 1);
        CHECK(at_hook[p->name] == p->grad);  // nothing added after the hook, stacked products included
    }
    CHECK(t.stacking_stats().stacked > 0);  // the recurrent weights' products were stacked
    CHECK(order.front().rfind("decoder.", 0) == 0);
    CHECK(order.back() == "encoder.weight");
    // the same pass without the hook gives the same gradients, bit for bit
    std::map<std::string, Array> with_hook;
    for (Parameter* p : params) with_hook[p->name] = p->grad;
    t.on_param_grad_final(nullptr);
    t.clear();
    for (Parameter* p : params) p->zero_grad();
    Rng rng2(2);
    Ctx c2{t, rng2, true};
    const LMFeatures f2 = model->features(c2, ids, 2, model->zero_state(2));
    t.backward(model->loss(c2, f2.y, targets));
    for (Parameter* p : params) CHECK(with_hook[p->name] == p->grad);
}

namespace {

// Stands in for N processes that all hold the same gradient g, except that each sum adds extra to it: a sum is
// g + (N - 1) (g + extra), so that after GradientSync's mean an element reduced once holds g + (N - 1) extra / N,
// one reduced twice or never something else. Sums complete at wait_sums, in order.
class MirrorComm final : public Comm {
public:
    MirrorComm(std::size_t n, float extra) : n_(n), extra_(extra) {}
    std::size_t rank() const override { return 0; }
    std::size_t size() const override { return n_; }
    std::string describe() const override { return "mirror"; }
    void sum(double* v, std::size_t n) override {
        for (std::size_t k = 0; k < n; ++k) v[k] *= static_cast<double>(n_);
    }
    void broadcast(float*, std::size_t) override {}
    void broadcast(std::uint64_t*, std::size_t) override {}
    void gather(const float*, std::size_t, float*) override {}
    void scatter(const float*, float*, std::size_t) override {}
    void barrier() override {}
    void start_sum(float* v, std::size_t n, std::function<void()> done) override {
        started.push_back(n);
        pending_.push_back({v, n, std::move(done)});
    }
    void wait_sums() override {
        for (auto& p : pending_) {
            for (std::size_t k = 0; k < p.n; ++k)
                p.v[k] = p.v[k] + static_cast<float>(n_ - 1) * (p.v[k] + extra_);
            p.done();
        }
        pending_.clear();
    }
    std::unique_ptr<Comm> first(std::size_t) override { return nullptr; }
    [[noreturn]] void abort(int status) override { std::exit(status); }

    std::vector<std::size_t> started;

private:
    struct Pending {
        float* v;
        std::size_t n;
        std::function<void()> done;
    };
    std::size_t n_;
    float extra_;
    std::vector<Pending> pending_;
};

}  // namespace

TEST_CASE("GradientSync: every gradient element reduced exactly once, in buckets started while backward runs") {
    LMConfig cfg = tiny_config("LSTM");
    cfg.emsize = cfg.nhid = 16;
    cfg.vocab = 300;  // encoder and decoder 300 x 16 = 4,800 floats: larger than the buckets below
    Rng init(8);
    auto model = builtin_registry().build(cfg, init);
    const std::vector<Parameter*> params = model->parameters();
    for (std::size_t bucket_bytes : {std::size_t{4096}, std::size_t{1} << 20}) {
        INFO("bucket bytes ", bucket_bytes);
        MirrorComm comm(4, 2.0f);
        GradientSync sync(comm, params, bucket_bytes);
        Tape t;
        sync.attach(t);
        for (int pass = 0; pass < 2; ++pass) {
            comm.started.clear();
            for (Parameter* p : params) p->zero_grad();
            Rng rng(3);
            Ctx c{t, rng, true};
            t.clear();
            const LMFeatures f = model->features(c, random_ids(12, cfg.vocab, 1), 2, model->zero_state(2));
            t.backward(model->loss(c, f.y, random_ids(12, cfg.vocab, 2)));
            std::map<std::string, Array> g;
            for (Parameter* p : params) g[p->name] = p->grad;
            CHECK(sync.finish() >= 0.0);
            CHECK(comm.started.size() == sync.buckets());
            CHECK(sync.started_early() == sync.buckets());  // every parameter had a leaf: all started in backward
            std::size_t total = 0;
            for (std::size_t n : comm.started) total += n;
            std::size_t elements = 0;
            for (Parameter* p : params) {
                elements += p->grad.size();
                for (std::size_t k = 0; k < p->grad.size(); ++k) {
                    const float want = g[p->name].data()[k] + 1.5f;  // (g + 3 (g + 2)) / 4
                    REQUIRE(p->grad.data()[k] == doctest::Approx(want).epsilon(1e-5));
                }
            }
            CHECK(total == elements);
        }
        if (bucket_bytes == 4096) {
            CHECK(sync.buckets() > params.size());  // the tables are cut into pieces
            CHECK(sync.packed_buckets() > 0);       // the biases are packed together
        } else {
            CHECK(sync.buckets() == 1);
        }
    }
}

TEST_CASE("GradientSync: a parameter the pass did not reach is reduced at finish(), in the same order") {
    Parameter a("a", Array({2, 3}, 1.0f)), unused("unused", Array({4, 1}, 5.0f));
    MirrorComm comm(2, 0.0f);
    GradientSync sync(comm, {&unused, &a}, 8);  // reverse order: a's buckets first, then unused's
    Tape t;
    sync.attach(t);
    unused.grad.fill(1.0f);
    t.backward(sum(t.param(a)));
    CHECK(comm.started.size() == 3);  // a (6 floats in pieces of 2) started in backward
    sync.finish();
    CHECK(comm.started.size() == 5);
    CHECK(unused.grad == Array({4, 1}, 1.0f));  // (1 + 1) / 2
    CHECK(a.grad == Array({2, 3}, 1.0f));
    t.clear();
    t.backward(sum(t.param(a)));
    CHECK_THROWS_AS(t.backward(sum(t.param(a))), Error);  // a second pass before finish(): reported, not corrupted
}

TEST_CASE("shares of a batch, and the streams they take") {
    SerialComm one;
    const Share s = share_of(7, one);
    CHECK(s.offset == 0);
    CHECK(s.count == 7);
    Batched b = batchify(random_ids(40, 9, 3), 5);  // 8 steps of 5
    const Batched part = take_streams(b, {1, 3, 5});
    CHECK(part.batch == 3);
    CHECK(part.steps == b.steps);
    for (std::size_t t = 0; t < b.steps; ++t)
        for (std::size_t k = 0; k < 3; ++k) CHECK(part.at(t, k) == b.at(t, 1 + k));
    CHECK_THROWS_AS(take_streams(b, {3, 3, 5}), ConfigError);
    Array x({2, 2}, 1.5f), y({2, 2});
    one.gather(x.data(), 4, y.data());
    CHECK(y == x);
}

TEST_CASE("truncated_bptt: the global_loss hook decides for every process") {
    Parameter w("w", Array({1, 1}, 2.0f));
    Tape t;
    WindowHooks h;
    h.loss = [&](Tape& tape, const WindowInfo&) { return sum(tape.param(w)); };
    std::size_t updates = 0, skipped = 0;
    h.update = [&](const WindowInfo& info) {
        CHECK(info.loss == 6.0f);  // what global_loss made of it
        ++updates;
        return true;
    };
    h.non_finite = [&](const WindowInfo&) {
        ++skipped;
        return true;
    };
    std::size_t calls = 0;
    h.global_loss = [&](float loss) { return ++calls == 2 ? std::nanf("") : 3.0f * loss; };
    truncated_bptt(t, 0, 3, 1, h);
    CHECK(updates == 2);
    CHECK(skipped == 1);  // another process's NaN: this one skips the window too, without a backward pass
    CHECK(w.grad(0, 0) == 2.0f);
}
