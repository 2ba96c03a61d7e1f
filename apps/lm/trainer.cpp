#include <xtgrad/apps/lm/trainer.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <chrono>
#include <cmath>
#include <ostream>
#include <thread>

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <xtgrad/apps/lm/evaluate.hpp>
#include <xtgrad/apps/lm/sha256.hpp>
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

// The metrics log's first line of each invocation: what was run on what (the report's run card reads it).
void write_start_event(MetricsWriter& metrics, const TrainOptions& o, const Corpus& c, const RNNLM& model,
                       const std::string& run_id) {
    std::vector<std::string> names;
    for (const std::string& f : corpus_files(o.data, o.level)) names.push_back(f.substr(f.find_last_of('/') + 1));
    char* abs = ::realpath(o.data.c_str(), nullptr);
    const std::string data = abs ? abs : o.data;
    std::free(abs);
    metrics.write("start", {{"command", o.command},
                            {"data", data},
                            {"level", o.level},
                            {"checksum", sha256_files(corpus_files(o.data, o.level))},
                            {"data_files", fmt::format("{}", fmt::join(names, ","))},
                            {"vocab_size", static_cast<std::int64_t>(c.vocab.size())},
                            {"train_tokens", static_cast<std::int64_t>(c.train.size())},
                            {"valid_tokens", static_cast<std::int64_t>(c.valid.size())},
                            {"test_tokens", static_cast<std::int64_t>(c.test.size())},
                            {"parameters", static_cast<std::int64_t>(model.parameter_count())},
                            {"model", model.config.describe()},
                            {"run_id", run_id},
                            {"resume", o.resume}});
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
    Share share;                          // this process's streams of the batch (all of them in one process)
    std::unique_ptr<GradientSync> sync;   // data-parallel: sums the gradients while backward runs
    double interval_wait = 0.0;           // seconds waited on the gradient sums in the current log interval
    std::size_t bucket_bytes = GradientSync::kDefaultBucketBytes;
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

Trainer::Trainer(const TrainOptions& options, const Registry& registry, std::ostream& log, Comm* comm)
    : o_(options), registry_(registry), log_(log), s_(std::make_unique<State>()), comm_(comm ? *comm : serial_) {
    if (!o_.init.empty() && !o_.resume.empty()) throw ConfigError("--init and --resume exclude each other");
    if (o_.save.empty()) throw ConfigError("--save must name a file");
    if (comm_.root()) {  // the one process that writes
        if (is_dir(o_.save)) throw ConfigError(fmt::format("--save {} is a directory; name a file", o_.save));
        try {
            check_can_write(o_.save);  // by creating a file there: also as root, on a read-only file system
        } catch (const FileError& e) {
            throw ConfigError(fmt::format("--save {}: {}", o_.save, e.what()));
        }
    }
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
    const std::size_t n = comm_.size();
    if (o_.batch_size % n != 0)
        throw ConfigError(fmt::format("--batch-size {} is not divisible by the {} processes: each must hold as many "
                                      "streams (try {})", o_.batch_size, n, (o_.batch_size / n + 1) * n));
    if (o_.eval_batch_size < n)
        throw ConfigError(fmt::format("--eval-batch-size {} is smaller than the {} processes: give each a stream",
                                      o_.eval_batch_size, n));
    s_->share = share_of(o_.batch_size, comm_);
    if (const char* mb = std::getenv("XTGRAD_BUCKET_MB")) {  // the gradient buckets' size, for tuning
        char* end = nullptr;
        const double v = std::strtod(mb, &end);
        if (*mb == '\0' || *end != '\0' || !(v >= 0.001 && v <= 4096))
            throw ConfigError(fmt::format("XTGRAD_BUCKET_MB='{}' is not a size in MB in [0.001, 4096]", mb));
        s_->bucket_bytes = static_cast<std::size_t>(v * (1 << 20));
    }
    if (o_.threads > 0) {
        set_blas_threads(static_cast<int>(o_.threads));
    } else if (n > 1) {  // the machine's cores between its processes, not each process all of them
        const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
        set_blas_threads(static_cast<int>(std::max<std::size_t>(1, cores / comm_.local_size())));
    }
    s_->tape.set_precision(parse_precision(o_.precision));  // training's products; evaluation stays fp32
}

Trainer::~Trainer() = default;

void Trainer::say(const std::string& s) {
    if (o_.quiet || !comm_.root()) return;
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
    if (comm_.size() > 1) s_->train = take_streams(s_->train, s_->share);
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
        if (!o_.init.empty() && comm_.root()) {  // the others receive them (start_processes)
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
        if (comm_.root())  // the whole batch's state, cut between the processes (start_processes)
            s.hidden = read_hidden_state(s.resume_sd, *s.model, o_.batch_size, o_.resume);
        s.best_val = s.progress.best_val;
        if (s.progress.best_written && comm_.root())
            s.best_weights = load_safetensors(s.files->best_path());  // this run's (checked)
        s.resume_sd = StateDict();
        say(fmt::format("resumed from {}: epoch {}, batch {}, lr {}", o_.resume, s.progress.epoch, s.progress.batch,
                        s.schedule->lr()));
    }
    s.metrics = std::make_unique<MetricsWriter>(comm_.root() ? s.files->metrics_path() : "");
    if (comm_.root()) write_start_event(*s.metrics, o_, s.corpus, *s.model, s.progress.run_id);
    say(fmt::format("model {} | params {} | batch {} bptt {} | {} optimizer lr {} clip {}", s.model->config.describe(),
                    s.model->parameter_count(), o_.batch_size, o_.bptt, s.opt->name(), s.schedule->lr(), o_.clip));
}

void Trainer::start_processes() {
    State& s = *s_;
    broadcast_parameters(comm_, s.params);  // new weights, --init's or the resume point's: rank 0's
    if (!o_.resume.empty()) {               // rank 0 holds the whole batch's carried state: each its rows
        RecurrentState mine = s.model->zero_state(s.share.count);
        scatter_state(comm_, s.hidden, mine);
        s.hidden = std::move(mine);
    }
    std::uint64_t id = std::strtoull(s.progress.run_id.c_str(), nullptr, 16);
    comm_.broadcast(&id, 1);
    s.progress.run_id = fmt::format("{:016x}", id);
    // everything else each process read for itself: the same, or the run stops here
    StateDict opt;
    s.opt->save_state(opt);
    std::vector<const Array*> arrays;
    for (const auto& kv : opt.tensors) arrays.push_back(&kv.second.value);
    const Rng::State r = s.rng.state();
    Array position({1, 3});
    position(0, 0) = static_cast<float>(s.progress.epoch);
    position(0, 1) = static_cast<float>(s.progress.batch);
    position(0, 2) = static_cast<float>(s.progress.position);
    arrays.push_back(&position);
    check_same(comm_, fingerprint(arrays, r[0] ^ (r[1] << 1) ^ (r[2] << 2) ^ (r[3] << 3)),
               "the training state (optimiser, generator, data position: was each process given the same resume point?)");
    s.sync = std::make_unique<GradientSync>(comm_, s.params, s.bucket_bytes);
    s.sync->attach(s.tape);
    say(fmt::format("data-parallel over {}: {} streams each, {} gradient buckets", comm_.describe(), s.share.count,
                    s.sync->buckets()));
}

void Trainer::save_resume() {
    State& s = *s_;
    s.progress.rng = s.rng.state();
    s.progress.elapsed = s.elapsed();
    s.started = now();
    RecurrentState whole;
    if (comm_.size() > 1) {  // the whole batch's state; and a check that the processes have not drifted apart
        whole = gather_state(comm_, s.hidden);
        std::vector<const Array*> weights;
        for (const Parameter* p : s.params) weights.push_back(&p->value);
        check_same(comm_, fingerprint(weights), "the weights (the processes' updates diverged)");
    }
    on_root(comm_, [&] {
        s.files->save_resume(*s.model, s.corpus.vocab, s.corpus.level, o_, *s.opt, *s.schedule, s.progress,
                             comm_.size() > 1 ? whole : s.hidden);
    });
}

void Trainer::log_interval(std::size_t batch, std::size_t nbatches) {
    State& s = *s_;
    const double el = now() - s.interval_start;
    const double n = static_cast<double>(s.interval_batches);
    const double cur = s.interval_loss / n, lr = s.schedule->lr();
    say(fmt::format("| epoch {:3d} | {:5d}/{}{:5d} batches | lr {} | ms/batch {:7.2f} | tok/s {:7.0f} | loss {:5.2f} | "
                    "ppl {:8.2f} | grad norm {:6.2f}",
                    s.progress.epoch, batch, o_.variable_bptt ? "~" : "", nbatches, lr >= 0.01 ? fmt::format("{:5.2f}", lr) : fmt::format("{:.2e}", lr),
                    el * 1000 / n, static_cast<double>(s.interval_tokens) / el, cur, perplexity(cur), s.interval_norm / n));
    std::vector<std::pair<std::string, MetricValue>> fields = {
        {"epoch", static_cast<std::int64_t>(s.progress.epoch)}, {"batch", static_cast<std::int64_t>(batch)},
        {"batches", static_cast<std::int64_t>(nbatches)},       {"lr", lr},
        {"ms_per_batch", el * 1000 / n},                        {"tokens_per_s", static_cast<double>(s.interval_tokens) / el},
        {"loss", cur},                                          {"ppl", perplexity(cur)},
        {"grad_norm", s.interval_norm / n}};  // the mean norm before clipping
    // the share of the interval's batches whose norm was above --clip (none without clipping)
    if (o_.clip > 0) fields.emplace_back("clip_fraction", static_cast<double>(s.interval_clipped) / n);
    s.metrics->write("train", fields);
    if (comm_.size() > 1) {  // what waiting on the other processes' gradients cost
        say(fmt::format("|   {}: waited {:.2f} ms/batch on the gradient sums ({:.1f}% of the time)", comm_.describe(),
                        s.interval_wait * 1000 / n, 100 * s.interval_wait / el));
        s.metrics->write("comm", {{"epoch", static_cast<std::int64_t>(s.progress.epoch)},
                                  {"batch", static_cast<std::int64_t>(batch)},
                                  {"processes", static_cast<std::int64_t>(comm_.size())},
                                  {"wait_ms_per_batch", s.interval_wait * 1000 / n},
                                  {"wait_fraction", s.interval_wait / el}});
    }
    s.interval_wait = 0.0;
    s.timed += el;
    s.timed_tokens += s.interval_tokens;
    s.interval_start = now();
    s.interval_loss = s.interval_norm = 0.0;
    s.interval_batches = s.interval_tokens = s.interval_clipped = 0;
}

bool Trainer::run_epoch() {
    State& s = *s_;
    TrainProgress& p = s.progress;
    if (p.position == 0) s.hidden = s.model->zero_state(s.share.count);
    const std::size_t steps = s.train.steps - 1;  // the last row is only a target
    const std::size_t t_end = o_.max_batches ? std::min(steps, o_.max_batches * o_.bptt) : steps;
    const std::size_t nbatches = (t_end + o_.bptt - 1) / o_.bptt;
    Ctx c{s.tape, s.rng, true};
    if (comm_.size() > 1) {  // dropout masks keyed by the streams of the whole batch: those of one process
        c.row_offset = s.share.offset;
        c.global_batch = o_.batch_size;
    }
    s.interval_start = now();
    bool stop_early = false;

    WindowHooks h;
    float ce = 0.0f;  // the window's cross-entropy, logged; the training loss adds the AR/TAR penalty to it
    h.loss = [&](Tape&, const WindowInfo& w) {
        get_batch(s.train, w.t0, w.t1 - w.t0, s.in, s.tg);
        const LMFeatures f = s.model->features(c, s.in, s.share.count, s.hidden);
        Var loss = s.model->loss(c, f.y, s.tg);
        s.hidden.assign(f);
        ce = loss.value()(0, 0);
        return f.penalty.tape ? loss + f.penalty : loss;
    };
    if (o_.variable_bptt) h.length = [&](std::size_t) { return variable_window(); };
    if (comm_.size() > 1) h.global_loss = [&](float loss) {  // equal shares: the whole batch's means
        double v[2] = {loss, ce};
        comm_.sum(v, 2);
        ce = static_cast<float>(v[1] / static_cast<double>(comm_.size()));
        return static_cast<float>(v[0] / static_cast<double>(comm_.size()));
    };
    h.non_finite = [&](const WindowInfo& w) {
        if (s.nan.tolerate(NanPolicy::Where::train_loss)) {
            say(fmt::format("warning: the training loss is {} at epoch {} batch {}; window skipped", w.loss, p.epoch, w.index + 1));
            return true;
        }
        say(NanPolicy::stop_message(NanPolicy::Where::train_loss, w.loss, p.epoch, w.index + 1, s.files->existing()));
        return false;
    };
    h.update = [&](const WindowInfo& w) {
        if (s.sync) s.interval_wait += s.sync->finish();  // the whole batch's gradient, in every process
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
        const double clock = s.budget > 0 ? run_clock() : 0.0;
        update_progress(p.total_batches, clock);
        if (s.budget > 0 && clock + s.reserve >= s.budget) {  // what is left is for the final evaluation
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

double Trainer::run_clock() {
    return comm_.size() == 1 ? s_->elapsed() : from_root(comm_, s_->elapsed());  // rank 0's clock decides
}

void Trainer::update_progress(std::size_t batches_done, double clock) {
    auto* cosine = dynamic_cast<CosineProgressLR*>(s_->schedule.get());
    if (!cosine) return;
    if (s_->budget > 0) {
        cosine->set_progress(clock / std::max(1.0, s_->budget - s_->reserve));
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
    const double val = evaluate(*s.model, s.valid, o_.bptt, o_.eval_max_batches, &comm_);
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
        on_root(comm_, [&] {  // the others get rank 0's best weights for the final test
            s.files->save_best(*s.model, s.corpus.vocab, s.corpus.level, p.run_id, s.options_json);
            s.best_weights = StateDict();
            s.model->save_weights(s.best_weights);
        });
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
    if (comm_.size() > 1) broadcast_parameters(comm_, s.params);
    r.test_loss = evaluate(*s.model, s.test, o_.bptt, o_.eval_max_batches, &comm_);
    say(std::string(89, '='));
    say(fmt::format("| End of training | {} loss {:5.2f} | {} ppl {:8.2f} | best valid ppl {:8.2f}", s.corpus.test_name,
                    r.test_loss, s.corpus.test_name, perplexity(r.test_loss), perplexity(r.best_val_loss)));
    say(std::string(89, '='));
    s.metrics->write("test", {{"split", s.corpus.test_name},
                              {"loss", r.test_loss},
                              {"ppl", perplexity(r.test_loss)},
                              {"best_val_loss", r.best_val_loss},
                              {"train_seconds", r.train_seconds},
                              {"tokens_per_s", r.tokens_per_second},
                              {"wall_time_s", s.elapsed()}});
}

TrainResult Trainer::run() {
    // before anything is loaded: the run's files must be its own (a new run owns none)
    s_->files = std::make_unique<Checkpointer>(o_.save);
    on_root(comm_, [&] { s_->files->check_owned(o_.resume.empty() ? "" : read_resume_point(o_.resume).progress.run_id); });
    s_->started = now();
    agree(comm_, [&] {  // a corpus or resume point that one process cannot read stops them all
        load_data();
        start();
    });
    if (comm_.size() > 1) start_processes();
    State& s = *s_;
    if (s.budget > 0) {
        // the final test (and the last validation) must fit: time a few evaluation windows now
        const double t0 = now();
        const std::size_t probe = 20;
        evaluate(*s.model, s.valid, o_.bptt, probe, &comm_);
        const double per_window = (now() - t0) / static_cast<double>(probe);
        const double windows = static_cast<double>((s.valid.steps + s.test.steps) / o_.bptt + 2);
        s.reserve = 1.2 * per_window * windows + 5.0;
        if (comm_.size() > 1) s.reserve = from_root(comm_, s.reserve);  // rank 0's, in every process
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
