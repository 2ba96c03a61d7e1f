// Helpers shared by test suites: the message of the error a call throws, temporary folders, small corpora.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include <xtgrad/lib/error.hpp>

namespace test_support {

// The message of the xtgrad::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const xtgrad::Error& e) {
        return e.what();
    }
    return "(no error)";
}

// A new empty folder /tmp/xtgrad-<tag>-XXXXXX.
inline std::string temp_folder(const std::string& tag) {
    std::string tmpl = "/tmp/xtgrad-" + tag + "-XXXXXX";
    const char* d = ::mkdtemp(&tmpl[0]);
    REQUIRE_MESSAGE(d != nullptr, "cannot make a temporary folder");
    return d;
}

// A new folder holding train.txt (about `train` tokens), valid.txt and test.txt (about `other`): the first lines of
// WikiText-2 ($XTGRAD_DATA or ../shared/data) when it is there, else a made-up line repeated.
inline std::string small_corpus(const std::string& tag, std::size_t train, std::size_t other) {
    const std::string dir = temp_folder(tag);
    const char* root = std::getenv("XTGRAD_DATA");
    const std::string wt = std::string(root ? root : "../shared/data") + "/wikitext-2";
    for (const char* split : {"train", "valid", "test"}) {
        std::ifstream in(wt + "/" + split + ".txt");
        std::ofstream out(dir + "/" + split + ".txt");
        std::string line;
        std::size_t tokens = 0;
        const std::size_t limit = std::string(split) == "train" ? train : other;
        if (in) {
            while (tokens < limit && std::getline(in, line)) {
                out << line << '\n';
                tokens += 1 + static_cast<std::size_t>(std::count(line.begin(), line.end(), ' '));
            }
        } else {
            for (std::size_t k = 0; k < limit / 10; ++k) out << " the cat sat on the mat and the dog ran \n";
        }
    }
    return dir;
}

}  // namespace test_support
