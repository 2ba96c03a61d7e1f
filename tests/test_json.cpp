// The JSON reader of files (lib/json_read): RFC 8259's number grammar, the bounds on depth and values, duplicate
// keys, UTF-8; and the same rules seen through a safetensors header.
#include <doctest/doctest.h>

#include <cstring>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/json_read.hpp>
#include <xtgrad/lib/safetensors.hpp>

using namespace xtgrad;

namespace {

nlohmann::json parse(const std::string& text, JsonLimits limits = {}) { return parse_json(text, limits, "doc"); }

std::string le64(std::uint64_t n) {
    std::string s;
    for (int b = 0; b < 8; ++b) s += static_cast<char>((n >> (8 * b)) & 0xFF);
    return s;
}

std::string safetensors(const std::string& header, const std::string& data = "") { return le64(header.size()) + header + data; }

}  // namespace

TEST_CASE("JSON numbers: RFC 8259's grammar exactly (the old parser took 01, 1., 1e and 1.e5)") {
    // not numbers: leading zeros, a dot or an exponent without digits, a plus sign, hex, the IEEE names
    for (const char* bad : {"01", "-01", "00", "1.", "1e", "1E+", "1.e5", ".5", "-", "+1", "--1", "0x10", "1e5.0",
                            "Infinity", "-Infinity", "NaN", "1_000", "0.5.1", "1 2"}) {
        INFO(bad);
        CHECK_THROWS_WITH_AS(parse(bad), doctest::Contains("doc: malformed JSON at byte"), FileError);
        CHECK_THROWS_AS(parse(fmt::format("[{}]", bad)), FileError);
    }
    // numbers, with their exact values and kinds: integers stay integers, anything with '.' or 'e' is a float
    CHECK(parse("0").is_number_unsigned());
    CHECK(parse("-0").is_number_integer());
    CHECK(parse("1.0").is_number_float());
    CHECK(parse("1e2").is_number_float());
    CHECK(parse("1e2").get<double>() == 100.0);
    CHECK(parse("-12.5E-1").get<double>() == -1.25);
    CHECK(parse("0.000001").get<double>() == 1e-6);
    CHECK(parse("18446744073709551615").get<std::uint64_t>() == 18446744073709551615ull);  // 2^64 - 1, exact
    CHECK(parse("18446744073709551616").is_number_float());  // 2^64 no longer fits: a float, not a wrapped integer
    CHECK(parse("-9223372036854775808").get<std::int64_t>() == INT64_MIN);
    CHECK(parse(" \t\r\n 7 \n").get<int>() == 7);  // the four whitespace characters around a value
}

TEST_CASE("JSON documents: strict about the rest of the text, strings and keys") {
    for (const char* bad : {"", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "[1] x", "tru", "nul",
                            "\"unterminated", "\"tab\there\"", "\"\\x41\"", "\"\\ud800\"", "/* c */ 1", "[1] // c"}) {
        INFO(bad);
        CHECK_THROWS_WITH_AS(parse(bad), doctest::Contains("malformed JSON"), FileError);
    }
    CHECK_THROWS_WITH_AS(parse("\"\xff\""), doctest::Contains("malformed JSON at byte"), FileError);  // invalid UTF-8
    CHECK_THROWS_WITH_AS(parse("\"\xc3\""), doctest::Contains("malformed JSON"), FileError);        // truncated sequence
    CHECK(parse("\"\\u00e9\\ud83d\\ude00\"").get<std::string>() == "\xc3\xa9\xf0\x9f\x98\x80");   // é and a surrogate pair
    // a key twice in one object is refused at any depth (nlohmann alone keeps the last one); once per object is fine
    CHECK_THROWS_WITH_AS(parse(R"({"a":1,"b":2,"a":3})"), doctest::Contains("doc: duplicate key \"a\""), FileError);
    CHECK_THROWS_WITH_AS(parse(R"({"x":{"k":1,"k":1}})"), doctest::Contains("duplicate key \"k\""), FileError);
    CHECK_THROWS_WITH_AS(parse(R"([{"k":1},{"k":2,"k":3}])"), doctest::Contains("duplicate key \"k\""), FileError);
    const nlohmann::json j = parse(R"({"k":{"k":[{"k":1},{"k":2}]}})");
    CHECK(j["k"]["k"][1]["k"] == 2);
    CHECK(json_quote("a\"b\\\n\x01", "s") == R"("a\"b\\\n\u0001")");
    CHECK_THROWS_WITH_AS(json_quote("bad \xff", "the name 'x'"), doctest::Contains("the name 'x' is not valid UTF-8"), FileError);
}

TEST_CASE("JSON bounds: depth and value count, refused at the first value past them") {
    const JsonLimits limits{3, 10};
    CHECK(parse("[[[]]]", limits).size() == 1);
    CHECK_THROWS_WITH_AS(parse("[[[[]]]]", limits), doctest::Contains("JSON nesting deeper than 3"), FileError);
    CHECK_THROWS_WITH_AS(parse(R"({"a":{"b":{"c":{}}}})", limits), doctest::Contains("nesting deeper than 3"), FileError);
    CHECK(parse("[1,2,3,4,5,6,7,8,9]", limits).size() == 9);  // 10 values with the array
    CHECK_THROWS_WITH_AS(parse("[1,2,3,4,5,6,7,8,9,10]", limits), doctest::Contains("more than 10 JSON values"), FileError);
    CHECK(parse(R"({"a":1,"b":2,"c":[3,4,5,6,7]})", limits).size() == 3);  // keys are not values: 9
    CHECK_THROWS_AS(parse(R"({"a":1,"b":2,"c":[3,4,5,6,7,8,9]})", limits), FileError);
    // the bound is checked while parsing: a document far past it is refused at the limit, whatever follows
    // (the old parser built all of a 16 MB header of zeros, 1.05 GB, before looking at it)
    std::string zeros = "[";
    for (int k = 0; k < 1000000; ++k) zeros += "0,";
    zeros += "x";  // malformed at the very end: a parser that read to the end would say so
    CHECK_THROWS_WITH_AS(parse(zeros, {3, 1000}), doctest::Contains("more than 1000 JSON values"), FileError);
    // many keys: each looked up once (the old duplicate check compared every pair: 40,000 keys took 1.7 s)
    std::string many = "{";
    for (int k = 0; k < 100000; ++k) many += fmt::format("{}\"k{}\":{}", k ? "," : "", k, k);
    many += "}";
    const nlohmann::json m = parse(many, {1, 1u << 20});
    CHECK(m.size() == 100000);
    CHECK(m["k99999"] == 99999);
}

TEST_CASE("safetensors headers: the grammar and the bounds apply, with the file named") {
    const std::string one = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
    const std::string four(4, '\0');
    CHECK(decode_safetensors(safetensors("{" + one + "}", four), "f").tensors.size() == 1);
    for (const char* offsets : {"[0,4.]", "[0,4e]", "[00,4]", "[0,+4]"}) {
        std::string h = "{" + one + "}";
        h.replace(h.find("[0,4]"), 5, offsets);
        INFO(h);
        CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(h, four), "f.safetensors"),
                             doctest::Contains("f.safetensors: header: malformed JSON at byte"), FileError);
    }
    for (const char* offsets : {"[0,4.0]", "[0,4e0]", "[0.0,4]", "[0,-4]"}) {  // well-formed numbers, not unsigned integers
        std::string h = "{" + one + "}";
        h.replace(h.find("[0,4]"), 5, offsets);
        INFO(h);
        CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(h, four), "f"), doctest::Contains("data_offsets must be non-negative integers"), FileError);
    }
    CHECK_THROWS_WITH_AS(decode_safetensors(safetensors("{" + one + "," + one + "}", four), "f"),
                         doctest::Contains("duplicate key \"a\""), FileError);
    CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(R"({"__metadata__":{"k":"1","k":"2"}})"), "f"),
                         doctest::Contains("duplicate key \"k\""), FileError);
    CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four), "f"),
                         doctest::Contains("tensor 'a': unexpected field 'x'"), FileError);
    CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", four), "f"),
                         doctest::Contains("nesting deeper than 3"), FileError);
    // a header of zeros: refused at the value bound, long before its end
    std::string zeros = "[";
    for (int k = 0; k < (1 << 21); ++k) zeros += "0,";
    zeros += "0]";
    CHECK_THROWS_WITH_AS(decode_safetensors(safetensors(zeros), "z"), doctest::Contains("more than 1048576 JSON values"), FileError);
    // a large real checkpoint is far inside the bounds: 20,000 tensors
    StateDict big;
    for (int k = 0; k < 20000; ++k) big.put(fmt::format("layer.{}.weight", k), Array({1, 1}, static_cast<float>(k)));
    big.metadata["note"] = "x";
    const StateDict back = decode_safetensors(encode_safetensors(big), "big");
    CHECK(back.tensors.size() == 20000);
    CHECK(back.get("layer.19999.weight").value(0, 0) == 19999.0f);
    // names and metadata that JSON cannot hold are refused when writing, not written as garbage
    StateDict bad;
    bad.put("w\xff", Array({1, 1}));
    CHECK_THROWS_WITH_AS(encode_safetensors(bad), doctest::Contains("tensor name"), FileError);
    StateDict badmeta;
    badmeta.metadata["k"] = "\xc3";
    CHECK_THROWS_WITH_AS(encode_safetensors(badmeta), doctest::Contains("metadata 'k' is not valid UTF-8"), FileError);
}
