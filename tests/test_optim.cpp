// optim/: each optimiser against PyTorch's update rules, schedules against their formulas, state round trips.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/optim/schedule.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

const float kC[3] = {0.1f, -0.3f, 0.2f};

// grad = 2 p + c: the gradient of sum(p^2) + c.p, as in tests/reference/torch_optim.py
void set_grad(Parameter& p) {
    for (std::size_t k = 0; k < 3; ++k) p.grad.data()[k] = 2.0f * p.value.data()[k] + kC[k];
}

Parameter start() {
    Parameter p("w", Array({1, 3}));
    p.value(0, 0) = 1.0f;
    p.value(0, 1) = -2.0f;
    p.value(0, 2) = 0.5f;
    return p;
}

}  // namespace

TEST_CASE("optimisers reproduce PyTorch 1.13's updates (3 steps, expected values from torch_optim.py)") {
    struct Ref {
        const char* name;
        std::function<std::unique_ptr<Optimizer>(Parameter*)> make;
        float expect[3][3];
    };
    const std::vector<Ref> refs = {
        {"sgd", [](Parameter* p) { return std::make_unique<SGD>(std::vector<Parameter*>{p}, 0.1); },
         {{0.79000002f, -1.5699999f, 0.38f}, {0.62200004f, -1.226f, 0.28400001f}, {0.48760003f, -0.95079994f, 0.20720001f}}},
        {"sgd_momentum_wd", [](Parameter* p) { return std::make_unique<SGD>(std::vector<Parameter*>{p}, 0.1, 0.9, 0.01); },
         {{0.78900003f, -1.568f, 0.3795f}, {0.43051103f, -0.834032f, 0.17477049f}, {0.01133821f, 0.024179626f, -0.064614929f}}},
        {"sgd_nesterov",
         [](Parameter* p) { return std::make_unique<SGD>(std::vector<Parameter*>{p}, 0.1, 0.9, 0.0, true); },
         {{0.60100001f, -1.183f, 0.27199998f}, {0.18352002f, -0.32815996f, 0.033439998f}, {-0.16376957f, 0.3829568f, -0.1650112f}}},
        {"adam", [](Parameter* p) { return std::make_unique<Adam>(std::vector<Parameter*>{p}, 0.1); },
         {{0.90000004f, -1.9f, 0.40000001f}, {0.80038512f, -1.8001524f, 0.3008827f}, {0.70147783f, -1.7005697f, 0.20354161f}}},
        {"adam_wd",
         [](Parameter* p) { return std::make_unique<Adam>(std::vector<Parameter*>{p}, 0.1, 0.9, 0.999, 1e-8, 0.1); },
         {{0.89999998f, -1.9f, 0.40000001f}, {0.80038631f, -1.800153f, 0.30089396f}, {0.70148265f, -1.700572f, 0.20358992f}}},
        {"adamw",
         [](Parameter* p) { return std::make_unique<AdamW>(std::vector<Parameter*>{p}, 0.1, 0.9, 0.999, 1e-8, 0.1); },
         {{0.89000005f, -1.88f, 0.39500001f}, {0.78154022f, -1.7613908f, 0.29200429f}, {0.67497432f, -1.6442994f, 0.19195659f}}},
        {"adagrad", [](Parameter* p) { return std::make_unique<Adagrad>(std::vector<Parameter*>{p}, 0.1, 0.01); },
         {{0.89999998f, -1.9f, 0.40000001f}, {0.83357292f, -1.8316756f, 0.33661541f}, {0.781672f, -1.7772702f, 0.2887764f}}},
        {"rmsprop", [](Parameter* p) { return std::make_unique<RMSprop>(std::vector<Parameter*>{p}, 0.01); },
         {{0.89999998f, -1.9f, 0.40000001f}, {0.83272344f, -1.830811f, 0.33579183f}, {0.77952451f, -1.7750403f, 0.28676918f}}},
        {"rmsprop_centered_momentum",
         [](Parameter* p) {
             return std::make_unique<RMSprop>(std::vector<Parameter*>{p}, 0.01, 0.99, 1e-8, 0.0, 0.5, true);
         },
         {{0.8994962f, -1.8994962f, 0.39949623f}, {0.78130966f, -1.7793658f, 0.28443149f}, {0.67051882f, -1.6637052f, 0.18178429f}}},
    };
    for (const Ref& r : refs) {
        Parameter p = start();
        auto opt = r.make(&p);
        for (int s = 0; s < 3; ++s) {
            set_grad(p);
            opt->step();
            for (int k = 0; k < 3; ++k) {
                INFO(r.name, " step ", s + 1, " entry ", k);
                CHECK(p.value(0, k) == doctest::Approx(r.expect[s][k]).epsilon(2e-6).scale(1.0));
            }
        }
    }
}

TEST_CASE("row-tracked gradients (an embedding's) and step_and_zero_grad change no update, for every optimiser") {
    // Two copies of a (50 x 4) table: one tracks its gradient's rows (as Embedding's does), one is dense. Both get the
    // gradient of a lookup, are clipped, then updated: by step_and_zero_grad (tracked) and step + zero_grad (dense).
    for (const char* name : {"sgd", "adam", "adamw", "adagrad", "rmsprop", "ntasgd"})
        for (double momentum : {0.0, 0.9}) {
            INFO(name << " momentum " << momentum);
            Rng rng(3);
            Parameter a("a", Array({50, 4})), b("b", Array({50, 4}));
            fill_uniform(a.value, rng, -1, 1);
            b.value = a.value;
            a.track_grad_rows(true);
            auto oa = make_optimizer(name, {&a}, 0.1, momentum, 0.0), ob = make_optimizer(name, {&b}, 0.1, momentum, 0.0);
            Tape t;
            for (int step = 0; step < 3; ++step) {
                const Ids ids = {3, 7, 3, 41, static_cast<std::int32_t>(10 + step)};
                Array w({ids.size(), 4});
                fill_uniform(w, rng, -1, 1);
                for (Parameter* p : {&a, &b}) {
                    t.clear();
                    t.backward(sum(gather(t.param(*p), ids) * t.constant(w)));
                }
                CHECK(a.grad == b.grad);
                CHECK(a.rows.valid);
                CHECK(a.rows.list.size() == 4);  // rows 3, 7, 41 and 10 + step: the others are zero, untouched
                const ClipResult ca = clip_grad_norm({&a}, 0.5), cb = clip_grad_norm({&b}, 0.5);
                CHECK(ca.norm == doctest::Approx(cb.norm).epsilon(1e-12));
                CHECK(a.grad == b.grad);
                oa->step_and_zero_grad();
                ob->step();
                ob->zero_grad();
                CHECK(a.value == b.value);
                CHECK(a.grad == Array(a.grad.shape(), 0.0f));
                CHECK(a.rows.list.empty());
            }
        }
    // a dense write (a tied decoder's product) makes a tracked gradient dense until zero_grad, and it stays right
    Rng rng(4);
    Parameter a("a", Array({20, 3})), b("b", Array({20, 3}));
    fill_uniform(a.value, rng, -1, 1);
    b.value = a.value;
    a.track_grad_rows(true);
    Array x({6, 3});
    fill_uniform(x, rng, -1, 1);
    for (Parameter* p : {&a, &b}) {
        Tape t;
        Var e = gather(t.param(*p), {1, 2, 2, 5, 0, 9});
        t.backward(sum(matmul_t(e * t.constant(x), t.param(*p))));
    }
    CHECK(a.grad == b.grad);
    CHECK(!a.rows.valid);
    a.zero_grad();
    CHECK(a.grad == Array(a.grad.shape(), 0.0f));
    CHECK(a.rows.valid);
}

TEST_CASE("NT-ASGD: SGD until the validation loss stops improving on all but the last `nonmono`, then averages") {
    Parameter p = start();
    NTASGD opt({&p}, 0.1, 2);
    for (double v : {5.0, 4.0, 3.0}) CHECK_FALSE(opt.observe(v));  // improving
    CHECK_FALSE(opt.observe(3.5));  // worse than 3.0, but 3.0 is among the last 2
    CHECK_FALSE(opt.averaging());
    set_grad(p);
    opt.step();
    CHECK(p.value(0, 0) == doctest::Approx(0.79f));  // plain SGD
    CHECK(opt.observe(4.5));  // worse than min(5, 4) = 4.0 of all but the last 2
    CHECK(opt.averaging());
    // two averaged steps: the average is the mean of the two iterates
    set_grad(p);
    opt.step();
    const float a1 = p.value(0, 0);
    set_grad(p);
    opt.step();
    const float a2 = p.value(0, 0);
    CHECK(a1 == doctest::Approx(0.622f));
    opt.swap_average();
    CHECK(p.value(0, 0) == doctest::Approx((a1 + a2) / 2).epsilon(1e-6));
    opt.swap_average();
    CHECK(p.value(0, 0) == a2);
}

TEST_CASE("optimiser state round-trips: a restored optimiser continues bit for bit") {
    for (const char* name : {"sgd", "adam", "adamw", "adagrad", "rmsprop", "ntasgd"}) {
        Parameter a = start(), b = start();
        auto oa = make_optimizer(name, {&a}, 0.05, 0.9);
        for (int s = 0; s < 3; ++s) {
            set_grad(a);
            oa->step();
        }
        if (auto* nt = dynamic_cast<NTASGD*>(oa.get())) {
            for (double v : {3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0}) nt->observe(v);
            set_grad(a);
            oa->step();
        }
        StateDict sd;
        oa->save_state(sd);
        b.value = a.value;
        auto ob = make_optimizer(name, {&b}, 999.0, 0.9);
        ob->load_state(sd);
        CHECK(ob->lr == 0.05);
        CHECK(ob->steps() == oa->steps());
        for (int s = 0; s < 3; ++s) {
            set_grad(a);
            oa->step();
            set_grad(b);
            ob->step();
        }
        INFO(name);
        CHECK(a.value == b.value);
    }
    Parameter p = start();
    StateDict sd;
    SGD({&p}, 0.1).save_state(sd);
    Adam adam({&p}, 0.1);
    CHECK_THROWS_WITH_AS(adam.load_state(sd), doctest::Contains("saved by 'sgd', cannot resume 'adam'"), FileError);
    CHECK_THROWS_AS(make_optimizer("lbfgs", {&p}, 0.1), ConfigError);
    CHECK_THROWS_AS(SGD({&p}, -1.0), ConfigError);
    CHECK_THROWS_AS(SGD({&p}, 0.1, 0.0, 0.0, true), ConfigError);
}

TEST_CASE("schedules follow their formulas") {
    StepLR step(1.0, 3, 0.5);
    CHECK(step.at(0) == 1.0);
    CHECK(step.at(2) == 1.0);
    CHECK(step.at(3) == 0.5);
    CHECK(step.at(7) == 0.25);
    ExponentialLR ex(2.0, 0.9);
    CHECK(ex.at(0) == 2.0);
    CHECK(ex.at(2) == doctest::Approx(1.62));
    CosineLR cos(1.0, 10, 0.1);
    CHECK(cos.at(0) == doctest::Approx(1.0));
    CHECK(cos.at(5) == doctest::Approx(0.55));
    CHECK(cos.at(10) == doctest::Approx(0.1));
    CHECK(cos.at(20) == doctest::Approx(0.1));
    WarmupLR warm(std::make_unique<CosineLR>(1.0, 10), 4);
    CHECK(warm.at(0) == doctest::Approx(0.25));
    CHECK(warm.at(1) == doctest::Approx(0.5 * (1 + std::cos(3.14159265358979 * 0.1)) / 2));
    CHECK(warm.at(4) == doctest::Approx((1 + std::cos(3.14159265358979 * 0.4)) / 2));
    CHECK_THROWS_AS(StepLR(1.0, 0, 0.5), ConfigError);
}

TEST_CASE("plateau annealing: the example's lr /= 4 when validation does not improve") {
    PlateauLR pl(20.0);
    CHECK_FALSE(pl.step(6.0));
    CHECK_FALSE(pl.step(5.5));
    CHECK(pl.step(5.6));
    CHECK(pl.lr() == 5.0);
    CHECK_FALSE(pl.step(5.4));
    CHECK(pl.step(5.4));  // equal is not better
    CHECK(pl.lr() == 1.25);
    CHECK(pl.best() == 5.4);
    StateDict sd;
    pl.save_state(sd);
    PlateauLR back(99.0);
    back.load_state(sd);
    CHECK(back.lr() == 1.25);
    CHECK(back.best() == 5.4);
    PlateauLR patient(1.0, 0.5, 2);
    patient.step(1.0);
    CHECK_FALSE(patient.step(1.1));
    CHECK_FALSE(patient.step(1.1));
    CHECK(patient.step(1.1));
    CHECK(patient.lr() == 0.5);
}
