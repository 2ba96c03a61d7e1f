// What happens to a data-parallel run when something goes wrong in one process: xtgrad-lm under mpirun with a
// process killed (kill -9) or frozen (SIGSTOP) mid-run must end, with a clear error, within a deadline (never
// hang); a bad setting or a file rank 0 alone cannot write stops every process with one message.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    const std::string why = std::string(name) + " must be set (meson test sets it)";
    REQUIRE_MESSAGE(v != nullptr, why);
    return v;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// A small corpus in a folder of its own.
std::string make_data() {
    char tmpl[] = "/tmp/xtgrad-mpifail-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    for (const char* split : {"train", "valid", "test"}) {
        std::ofstream f(dir + "/" + split + ".txt");
        for (int k = 0; k < 200; ++k) f << " the cat sat on the mat and the dog ran " << k % 17 << " \n";
    }
    return dir;
}

// mpirun -np n xtgrad-lm train ARGS, in a process group of its own, output to a file.
struct Launch {
    pid_t pid = -1;
    std::string out;
    int status = -1;

    Launch(int n, const std::string& args, const std::string& dir, const std::vector<std::string>& extra_env = {}) {
        out = dir + "/out.txt";
        const std::string cmd = fmt::format("exec {} --oversubscribe --allow-run-as-root -np {} {} train {}",
                                            env("MPIRUN"), n, env("XTGRAD_LM"), args);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::setpgid(0, 0);
            const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            for (const std::string& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));
            ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::setpgid(pid, pid);
    }
    // Waits at most `seconds` for mpirun to end; true when it did (status set). Otherwise the whole group is killed.
    bool wait(double seconds) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (std::chrono::steady_clock::now() < end) {
            int st = 0;
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return false;
    }
    ~Launch() {
        if (status < 0 && pid > 0) {
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    // The pid of the process of rank r among mpirun's children (0 while not started).
    pid_t rank(int r) const {
        DIR* d = ::opendir("/proc");
        pid_t found = 0;
        while (dirent* e = d ? ::readdir(d) : nullptr) {
            const pid_t p = static_cast<pid_t>(std::atoi(e->d_name));
            if (p <= 0) continue;
            const std::string stat = slurp(fmt::format("/proc/{}/stat", p));
            const std::size_t close = stat.rfind(')');
            if (close == std::string::npos) continue;
            std::istringstream rest(stat.substr(close + 2));
            std::string state;
            pid_t parent = 0;
            rest >> state >> parent;
            if (parent != pid) continue;
            std::string environ = slurp(fmt::format("/proc/{}/environ", p));
            std::replace(environ.begin(), environ.end(), '\0', '\n');
            if (environ.find(fmt::format("\nOMPI_COMM_WORLD_RANK={}\n", r)) != std::string::npos) found = p;
        }
        if (d) ::closedir(d);
        return found;
    }
};

// Waits until the run's metrics show `lines` training records (the run is well inside its loop).
bool training(const std::string& metrics, std::size_t lines, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (count(slurp(metrics), "\"event\":\"train\"") >= lines) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

const std::string kLong = "--emsize 16 --nhid 16 --batch_size 4 --bptt 8 --threads 1 --log-interval 1 --epochs 100000";

}  // namespace

TEST_CASE("a process killed mid-run (kill -9): mpirun stops the others with a clear error, no hang") {
    const std::string d = make_data();
    Launch run(2, fmt::format("--data {} {} --save {}/m.safetensors", d, kLong, d), d);
    REQUIRE_MESSAGE(training(d + "/m.metrics.jsonl", 3, 60), slurp(run.out));
    const pid_t victim = run.rank(1);
    REQUIRE(victim > 0);
    ::kill(victim, SIGKILL);
    REQUIRE_MESSAGE(run.wait(60), "mpirun still running 60 s after a process was killed:\n", slurp(run.out));
    const std::string out = slurp(run.out);
    INFO(out);
    CHECK(run.status != 0);
    CHECK((out.find("signal 9") != std::string::npos || out.find("no answer from the other processes") != std::string::npos));
}

TEST_CASE("a process that stops answering (SIGSTOP): the others give up after XTGRAD_COMM_TIMEOUT, naming why") {
    const std::string d = make_data();
    Launch run(2, fmt::format("--data {} {} --save {}/m.safetensors", d, kLong, d), d, {"XTGRAD_COMM_TIMEOUT=5"});
    REQUIRE_MESSAGE(training(d + "/m.metrics.jsonl", 3, 60), slurp(run.out));
    const pid_t victim = run.rank(1);
    REQUIRE(victim > 0);
    ::kill(victim, SIGSTOP);
    const bool ended = run.wait(60);
    ::kill(victim, SIGKILL);
    const std::string out = slurp(run.out);
    INFO(out);
    REQUIRE_MESSAGE(ended, "mpirun still running 60 s after a process froze");
    CHECK(run.status != 0);
    CHECK(out.find("rank 0: error: no answer from the other processes for 5 s") != std::string::npos);
}

namespace {

// Runs a launch that must fail at once: its exit status, and how often `message` is in its output.
std::pair<int, std::size_t> failing(int n, const std::string& args, const std::string& dir, const std::string& message) {
    Launch run(n, args, dir);
    REQUIRE(run.wait(60));
    const std::string out = slurp(run.out);
    INFO(out);
    CHECK(out.find("MPI_ABORT") == std::string::npos);  // every process stopped by itself
    return {run.status, count(out, message)};
}

}  // namespace

TEST_CASE("a bad setting or a file rank 0 cannot take: every process stops with one message") {
    const std::string d = make_data();
    CHECK(failing(3, fmt::format("--data {} --batch_size 4 --save {}/m.safetensors", d, d), d,
                  "--batch-size 4 is not divisible by the 3 processes") == std::pair<int, std::size_t>{2, 1});
    std::ofstream(d + "/taken.safetensors") << "someone else's model";
    CHECK(failing(2, fmt::format("--data {} --batch_size 4 --save {}/taken.safetensors", d, d), d,
                  "taken.safetensors exists and belongs to") == std::pair<int, std::size_t>{2, 1});
    CHECK(slurp(d + "/taken.safetensors") == "someone else's model");
    CHECK(failing(2, fmt::format("--data {}/none --save {}/m.safetensors", d, d), d, "error:") ==
          std::pair<int, std::size_t>{1, 1});
}
