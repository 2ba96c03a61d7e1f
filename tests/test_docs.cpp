// The custom-cell tutorial compiles as written: its code blocks are the example program's files, verbatim.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), "cannot read ", path);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string> cpp_blocks(const std::string& md) {
    std::vector<std::string> blocks;
    std::size_t at = 0;
    while ((at = md.find("```cpp\n", at)) != std::string::npos) {
        const std::size_t start = at + 7, end = md.find("\n```", start);
        REQUIRE(end != std::string::npos);
        blocks.push_back(md.substr(start, end - start + 1));
        at = end + 4;
    }
    return blocks;
}

}  // namespace

TEST_CASE("docs/custom-cell.md shows apps/examples/mgu_cell.hpp and custom_cell.cpp verbatim") {
    const char* root = std::getenv("XTGRAD_SOURCE");
    REQUIRE_MESSAGE(root != nullptr, "XTGRAD_SOURCE must name the source tree (meson test sets it)");
    const std::string src = root;
    const std::vector<std::string> blocks = cpp_blocks(slurp(src + "/docs/custom-cell.md"));
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0] == slurp(src + "/apps/examples/mgu_cell.hpp"));
    CHECK(blocks[1] == slurp(src + "/apps/examples/custom_cell.cpp"));
}
