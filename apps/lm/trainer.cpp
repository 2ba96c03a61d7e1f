#include <xtgrad/apps/lm/trainer.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <ostream>

#include <fmt/core.h>
#include <fmt/ostream.h>

#include <xtgrad/apps/lm/evaluate.hpp>
#include <xtgrad/layers/tbptt.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>
#include <xtgrad/optim/clip.hpp>

namespace xtgrad {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

// Everything a run holds between its parts.
struct Trainer::State {
    Corpus corpus;
    Batched train, valid, test;
    std::unique_ptr<RNNLM> model;
    std::vector<Parameter*> params;
    std::unique_ptr<Optimizer> opt;
    std::unique_ptr<LRSchedule> schedule;
    std::unique_ptr<Checkpointer> files;
    std::unique_ptr<MetricsWriter> metrics;
    NanPolicy nan;
    TrainProgress progress;
    Rng rng;
    Tape tape;
    RecurrentState hidden;
    StateDict resume_sd;     // the resume point, until start() took what it needs
    StateDict best_weights;  // the best model's weights, for the final test
    double best_val = std::numeric_limits<double>::infinity();
    std::string options_json;
    TrainResult result;
    Ids in, tg;
    // the current log interval
    double interval_start = 0.0, interval_loss = 0.0, interval_norm = 0.0;
    std::size_t interval_batches = 0, interval_tokens = 0, interval_clipped = 0;
    double timed = 0.0;
    std::size_t timed_tokens = 0;
    // time: the run's clock (with what earlier invocations took), the budget and what the final test needs
    double started = 0.0, budget = 0.0, reserve = 0.0;
    bool out_of_time = false;
    double elapsed() const { return progress.elapsed + (now() - started); }
};

Trainer::Trainer(const TrainOptions& options, const Registry& registry, std::ostream& log)
    : o_(options), registry_(registry), log_(log), s_(std::make_unique<State>()) {
    if (!o_.init.empty() && !o_.resume.empty()) throw ConfigError("--init and --resume exclude each other");
    if (o_.save.empty()) throw ConfigError("--save must name a file");
    if (is_dir(o_.save)) throw ConfigError(fmt::format("--save {} is a directory; name a file", o_.save));
    const std::size_t slash = o_.save.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : o_.save.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw ConfigError(fmt::format("--save {}: cannot write into {}: {}", o_.save, dir, std::strerror(errno)));
    make_optimizer(o_.optimizer, {}, o_.lr, o_.momentum, o_.weight_decay);  // checks the name and its settings
    if (o_.lr_schedule != "plateau" && o_.lr_schedule != "cosine")
        throw ConfigError(fmt::format("--lr-schedule must be plateau or cosine, got '{}'", o_.lr_schedule));
    if (o_.lr_schedule == "cosine" && make_optimizer(o_.optimizer, {}, o_.lr)->holds_lr())
        throw ConfigError(fmt::format("--optimizer {} keeps its learning rate: use --lr-schedule plateau", o_.optimizer));
    s_->budget = o_.time_budget_seconds();
    registry_.check(o_.cell);
    LMConfig probe = o_.model_config();
    probe.vocab = 1;  // the real size comes from the data; checked here for the other settings
    probe.validate();
    if (o_.threads > 0) set_blas_threads(static_cast<int>(o_.threads));
    s_->tape.set_precision(parse_precision(o_.precision));  // training's products; evaluation stays fp32
}

Trainer::~Trainer() = default;

void Trainer::say(const std::string& s) {
    if (o_.quiet) return;
    fmt::print(log_, "{}\n", s);
    log_.flush();  // progress shows up at once, also through a pipe or in a file
}

void Trainer::load_data() {
    const double t0 = now();
    s_->corpus = load_corpus(o_.data, o_.level);
    const Corpus& c = s_->corpus;
    say(fmt::format("corpus {} ({} level): vocab {}, train {}, valid {}, test {} tokens (load {:.1f}s)", o_.data, o_.level,
                    c.vocab.size(), c.train.size(), c.valid.size(), c.test.size(), now() - t0));
    s_->train = batchify(c.train, o_.batch_size);
    s_->valid = batchify(c.valid, o_.eval_batch_size);
    s_->test = batchify(c.test, o_.eval_batch_size);
    if (s_->train.steps < 2)
        throw ConfigError(fmt::format("the training split ({} tokens) is too short for --batch-size {}", c.train.size(),
                                      o_.batch_size));
    if (s_->valid.steps < 2 || s_->test.steps < 2)
        throw ConfigError(fmt::format("the valid/test splits are too short for the evaluation batch size {}",
                                      o_.eval_batch_size));
}

void Trainer::start() {
    State& s = *s_;
    if (!o_.resume.empty()) {
        LoadedModel lm = load_model(o_.resume, registry_, nullptr, "");
        if (lm.vocab.tokens() != s.corpus.vocab.tokens())
            throw FileError(fmt::format("{}: its vocabulary ({} tokens) is not the one of {} ({} tokens)", o_.resume,
                                        lm.vocab.size(), o_.data, s.corpus.vocab.size()));
        s.model = std::move(lm.model);
        s.resume_sd = std::move(lm.sd);
        const ResumePoint rp = read_resume_point(o_.resume);
        s.progress = rp.progress;
    } else {
        LMConfig config = o_.model_config();
        config.vocab = s.corpus.vocab.size();
        if (!config.cutoffs.empty()) config.order = frequency_order(s.corpus.train, config.vocab);
        s.rng.reseed(o_.seed);
        s.model = registry_.build(config, s.rng);
        if (!o_.init.empty()) {
            s.model->load_weights(load_safetensors(o_.init), o_.init);
            say(fmt::format("initial weights from {}", o_.init));
        }
        s.progress.run_id = new_run_id();
    }
    s.params = s.model->parameters();
    s.opt = make_optimizer(o_.optimizer, s.params, o_.lr, o_.momentum, o_.weight_decay);
    if (o_.lr_schedule == "cosine") {
        s.schedule = std::make_unique<CosineProgressLR>(o_.lr);
    } else {  // an optimiser that holds its rate (NT-ASGD) gets a plateau rule that never cuts it
        s.schedule = std::make_unique<PlateauLR>(o_.lr, 0.25, s.opt->holds_lr() ? std::numeric_limits<std::size_t>::max() : 0);
    }
    s.options_json = train_options_to_json(o_);
    if (!o_.resume.empty()) {
        s.opt->load_state(s.resume_sd);
        s.schedule->load_state(s.resume_sd, "schedule.");
        s.rng.set_state(s.progress.rng);
        s.hidden = read_hidden_state(s.resume_sd, *s.model, o_.batch_size, o_.resume);
        s.best_val = s.progress.best_val;
        if (s.progress.best_written) s.best_weights = load_safetensors(s.files->best_path());  // this run's (checked)
        s.resume_sd = StateDict();
        say(fmt::format("resumed from {}: epoch {}, batch {}, lr {}", o_.resume, s.progress.epoch, s.progress.batch,
                        s.schedule->lr()));
    }
    s.metrics = std::make_unique<MetricsWriter>(s.files->metrics_path());
    say(fmt::format("model {} | params {} | batch {} bptt {} | {} optimizer lr {} clip {}", s.model->config.describe(),
                    s.model->parameter_count(), o_.batch_size, o_.bptt, s.opt->name(), s.schedule->lr(), o_.clip));
}

void Trainer::save_resume() {
    State& s = *s_;
    s.progress.rng = s.rng.state();
    s.progress.elapsed = s.elapsed();
    s.started = now();
    s.files->save_resume(*s.model, s.corpus.vocab, s.corpus.level, o_, *s.opt, *s.schedule, s.progress, s.hidden);
}

void Trainer::log_interval(std::size_t batch, std::size_t nbatches) {
    State& s = *s_;
    const double el = now() - s.interval_start;
    const double n = static_cast<double>(s.interval_batches);
    const double cur = s.interval_loss / n, lr = s.schedule->lr();
    say(fmt::format("| epoch {:3d} | {:5d}/{}{:5d} batches | lr {} | ms/batch {:7.2f} | tok/s {:7.0f} | loss {:5.2f} | "
                    "ppl {:8.2f} | grad norm {:6.2f}",
                    s.progress.epoch, batch, o_.variable_bptt ? "~" : "", nbatches, lr >= 0.01 ? fmt::format("{:05.2f}", lr) : fmt::format("{:.2e}", lr),
                    el * 1000 / n, static_cast<double>(s.interval_tokens) / el, cur, perplexity(cur), s.interval_norm / n));
    s.metrics->write("train", {{"epoch", static_cast<std::int64_t>(s.progress.epoch)},
                               {"batch", static_cast<std::int64_t>(batch)},
                               {"batches", static_cast<std::int64_t>(nbatches)},
                               {"lr", lr},
                               {"ms_per_batch", el * 1000 / n},
                               {"tokens_per_s", static_cast<double>(s.interval_tokens) / el},
                               {"loss", cur},
                               {"ppl", perplexity(cur)},
                               {"grad_norm", s.interval_norm / n},
                               {"clipped", static_cast<double>(s.interval_clipped) / n}});
    s.timed += el;
    s.timed_tokens += s.interval_tokens;
    s.interval_start = now();
    s.interval_loss = s.interval_norm = 0.0;
    s.interval_batches = s.interval_tokens = s.interval_clipped = 0;
}

bool Trainer::run_epoch() {
    State& s = *s_;
    TrainProgress& p = s.progress;
    if (p.position == 0) s.hidden = s.model->zero_state(o_.batch_size);
    const std::size_t steps = s.train.steps - 1;  // the last row is only a target
    const std::size_t t_end = o_.max_batches ? std::min(steps, o_.max_batches * o_.bptt) : steps;
    const std::size_t nbatches = (t_end + o_.bptt - 1) / o_.bptt;
    Ctx c{s.tape, s.rng, true};
    s.interval_start = now();
    bool stop_early = false;

    WindowHooks h;
    float ce = 0.0f;  // the window's cross-entropy, logged; the training loss adds the AR/TAR penalty to it
    h.loss = [&](Tape&, const WindowInfo& w) {
        get_batch(s.train, w.t0, w.t1 - w.t0, s.in, s.tg);
        const LMFeatures f = s.model->features(c, s.in, o_.batch_size, s.hidden);
        Var loss = s.model->loss(c, f.y, s.tg);
        s.hidden.assign(f);
        ce = loss.value()(0, 0);
        return f.penalty.tape ? loss + f.penalty : loss;
    };
    if (o_.variable_bptt) h.length = [&](std::size_t) { return variable_window(); };
    h.non_finite = [&](const WindowInfo& w) {
        if (s.nan.tolerate(NanPolicy::Where::train_loss)) {
            say(fmt::format("warning: the training loss is {} at epoch {} batch {}; window skipped", w.loss, p.epoch, w.index + 1));
            return true;
        }
        say(NanPolicy::stop_message(NanPolicy::Where::train_loss, w.loss, p.epoch, w.index + 1, s.files->existing()));
        return false;
    };
    h.update = [&](const WindowInfo& w) {
        const ClipResult cr = o_.clip > 0 ? clip_grad_norm(s.params, o_.clip) : ClipResult{grad_norm(s.params), true, false};
        if (!std::isfinite(cr.norm)) {
            s.opt->zero_grad();
            if (s.nan.tolerate(NanPolicy::Where::grad_norm)) {
                say(fmt::format("warning: the gradient norm is {} at epoch {} batch {}; window skipped", cr.norm, p.epoch,
                                w.index + 1));
                return true;
            }
            say(NanPolicy::stop_message(NanPolicy::Where::grad_norm, cr.norm, p.epoch, w.index + 1, s.files->existing()));
            s.result.stopped_non_finite = true;
            return false;
        }
        s.nan.ok();
        // a window longer or shorter than --bptt moves the weights in proportion (AWD-LSTM's variable BPTT)
        s.opt->lr = s.schedule->lr() * static_cast<double>(w.t1 - w.t0) / static_cast<double>(o_.bptt);
        s.opt->step();
        s.opt->zero_grad();
        s.schedule->on_step();
        p.batch = w.index + 1;
        p.position = w.t1;
        ++p.total_batches;
        ++s.result.batches;
        s.interval_loss += ce;
        s.interval_norm += cr.norm;
        s.interval_clipped += cr.clipped;
        ++s.interval_batches;
        s.interval_tokens += (w.t1 - w.t0) * o_.batch_size;
        const bool last = w.t1 >= t_end;
        if (s.interval_batches == o_.log_interval || last) log_interval(p.batch, nbatches);
        if (o_.stop_after && p.total_batches >= o_.stop_after && !last) {
            stop_early = true;
            return false;
        }
        update_progress(p.total_batches);
        if (s.budget > 0 && s.elapsed() + s.reserve >= s.budget) {  // what is left is for the final evaluation
            s.out_of_time = true;
            if (s.interval_batches) log_interval(p.batch, nbatches);
            return false;
        }
        if (o_.checkpoint_interval && p.total_batches % o_.checkpoint_interval == 0 && !last) save_resume();
        return true;
    };
    const TbpttResult r = truncated_bptt(s.tape, p.position, t_end, o_.bptt, h, p.batch);
    if (r.non_finite) s.result.stopped_non_finite = true;
    if (s.out_of_time) return true;  // the epoch ends early: validation, then the final test
    if (stop_early) {
        save_resume();
        say(fmt::format("stopped after {} batches as asked; resume with --resume {}", p.total_batches,
                        s.files->resume_path()));
        s.result.stopped_early = true;
    }
    return !(r.stopped || s.result.stopped_non_finite || stop_early);
}

std::size_t Trainer::variable_window() {
    // AWD-LSTM: --bptt with probability 0.95, else half of it, then N(that, 5), at least 5, at most --bptt + 20
    Rng& r = s_->rng;
    const double base = r.uniform() < 0.95f ? static_cast<double>(o_.bptt) : static_cast<double>(o_.bptt) / 2.0;
    const double len = std::round(base + 5.0 * static_cast<double>(r.normal()));
    return static_cast<std::size_t>(std::clamp(len, 5.0, static_cast<double>(o_.bptt + 20)));
}

void Trainer::update_progress(std::size_t batches_done) {
    auto* cosine = dynamic_cast<CosineProgressLR*>(s_->schedule.get());
    if (!cosine) return;
    if (s_->budget > 0) {
        cosine->set_progress(s_->elapsed() / std::max(1.0, s_->budget - s_->reserve));
    } else {
        const std::size_t steps = s_->train.steps - 1;
        const std::size_t per_epoch = (std::min(steps, o_.max_batches ? o_.max_batches * o_.bptt : steps) + o_.bptt - 1) / o_.bptt;
        cosine->set_progress(static_cast<double>(batches_done) / static_cast<double>(per_epoch * o_.epochs));
    }
}

bool Trainer::end_epoch(double epoch_seconds) {
    State& s = *s_;
    TrainProgress& p = s.progress;
    const double ve = now();
    const bool swapped = s.opt->has_eval_weights();
    if (swapped) s.opt->swap_eval_weights();  // evaluate (and save) the weights the optimiser means for evaluation
    const double val = evaluate(*s.model, s.valid, o_.bptt, o_.eval_max_batches);
    say(std::string(89, '-'));
    say(fmt::format("| end of epoch {:3d} | time: {:6.2f}s | valid loss {:5.2f} | valid ppl {:8.2f} | eval {:.1f}s",
                    p.epoch, epoch_seconds, val, perplexity(val), now() - ve));
    say(std::string(89, '-'));
    s.metrics->write("epoch", {{"epoch", static_cast<std::int64_t>(p.epoch)},
                               {"time_s", epoch_seconds},
                               {"val_loss", val},
                               {"val_ppl", perplexity(val)},
                               {"lr", s.schedule->lr()}});
    if (!std::isfinite(perplexity(val))) {  // NaN, Inf, or a loss whose perplexity overflows: a diverged model
        if (swapped) s.opt->swap_eval_weights();
        say(NanPolicy::stop_message(NanPolicy::Where::valid_loss, val, p.epoch, 0, s.files->existing()));
        s.result.stopped_non_finite = true;
        return false;
    }
    if (val < s.best_val) {
        s.best_val = p.best_val = val;
        p.best_written = true;
        s.files->save_best(*s.model, s.corpus.vocab, s.corpus.level, p.run_id, s.options_json);
        s.best_weights = StateDict();
        s.model->save_weights(s.best_weights);
    }
    s.schedule->on_validation(val);
    if (swapped) s.opt->swap_eval_weights();  // back to the iterate training continues from
    if (s.opt->observe(val)) say(fmt::format("{}: validation stopped improving; switching as the optimiser asks", s.opt->name()));
    if (s.out_of_time) {  // the budget ended this epoch early: the resume point continues it where it stopped
        save_resume();
        say(fmt::format("time budget {:.0f}s: stopping after {:.0f}s of training to evaluate the best model",
                        s.budget, s.elapsed()));
        return false;
    }
    ++p.epoch;  // the resume point is the start of the next epoch
    p.batch = p.position = 0;
    save_resume();
    if (o_.stop_after && p.total_batches >= o_.stop_after && p.epoch <= o_.epochs) {
        say(fmt::format("stopped after {} batches as asked; resume with --resume {}", p.total_batches,
                        s.files->resume_path()));
        s.result.stopped_early = true;
        return false;
    }
    return true;
}

void Trainer::final_test() {
    State& s = *s_;
    TrainResult& r = s.result;
    r.train_seconds = s.timed;
    r.tokens_per_second = s.timed > 0 ? static_cast<double>(s.timed_tokens) / s.timed : 0.0;
    r.best_val_loss = s.best_val;
    if (!s.best_weights.tensors.empty()) s.model->load_weights(s.best_weights, "best weights");
    r.test_loss = evaluate(*s.model, s.test, o_.bptt, o_.eval_max_batches);
    say(std::string(89, '='));
    say(fmt::format("| End of training | {} loss {:5.2f} | {} ppl {:8.2f} | best valid ppl {:8.2f}", s.corpus.test_name,
                    r.test_loss, s.corpus.test_name, perplexity(r.test_loss), perplexity(r.best_val_loss)));
    say(std::string(89, '='));
    s.metrics->write("test", {{"split", s.corpus.test_name},
                              {"loss", r.test_loss},
                              {"ppl", perplexity(r.test_loss)},
                              {"best_val_loss", r.best_val_loss}});
}

TrainResult Trainer::run() {
    // before anything is loaded: the run's files must be its own (a new run owns none)
    s_->files = std::make_unique<Checkpointer>(o_.save);
    s_->files->check_owned(o_.resume.empty() ? "" : read_resume_point(o_.resume).progress.run_id);
    s_->started = now();
    load_data();
    start();
    State& s = *s_;
    if (s.budget > 0) {
        // the final test (and the last validation) must fit: time a few evaluation windows now
        const double t0 = now();
        const std::size_t probe = 20;
        evaluate(*s.model, s.valid, o_.bptt, probe);
        const double per_window = (now() - t0) / static_cast<double>(probe);
        const double windows = static_cast<double>((s.valid.steps + s.test.steps) / o_.bptt + 2);
        s.reserve = 1.2 * per_window * windows + 5.0;
        say(fmt::format("time budget {:.0f}s: {:.0f}s kept for the final evaluation", s.budget, s.reserve));
    }
    for (; s.progress.epoch <= o_.epochs;) {
        const double epoch_start = now();
        if (!run_epoch()) return s.result;
        if (!end_epoch(now() - epoch_start)) break;
    }
    if (s.result.stopped_non_finite || s.result.stopped_early) return s.result;
    final_test();
    return s.result;
}

}  // namespace xtgrad
