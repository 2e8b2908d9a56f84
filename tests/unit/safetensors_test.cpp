// safetensors: round trip, and every kind of damage rejected with a clear error.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "runtime/error.h"
#include "runtime/safetensors.h"

using namespace opal;

namespace {
SafetensorsFile sample() {
  SafetensorsFile f;
  f.tensors["w"] = {{2, 3}, {1, 2, 3, 4, 5, 6}};
  f.tensors["b"] = {{3}, {-1, 0.5f, 7}};
  f.metadata["note"] = "x";
  return f;
}
std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_SUITE("safetensors") {
TEST_CASE("round trip through a file") {
  auto path = std::filesystem::temp_directory_path() / "opal-st-test.safetensors";
  write_safetensors(path, sample());
  SafetensorsFile r = read_safetensors(path);
  CHECK(r.tensors.at("w").shape == std::vector<int64_t>{2, 3});
  CHECK(r.tensors.at("b").values == std::vector<float>{-1, 0.5f, 7});
  CHECK(r.metadata.at("note") == "x");
  std::filesystem::remove(path);
}

TEST_CASE("a file truncated at any byte is rejected") {
  std::string bytes = serialize_safetensors(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("truncated to " << n << " bytes");
    CHECK(error_of(bytes.substr(0, n)).find("not a valid safetensors file") != std::string::npos);
  }
  CHECK(error_of(bytes).empty());
}

TEST_CASE("bad headers, dtypes, sizes and overlaps are named") {
  auto with_header = [](const std::string& h, size_t data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char((h.size() >> (8 * i)) & 0xff);
    return out + h + std::string(data, '\0');
  };
  CHECK(error_of(with_header("{not json", 0)).find("not JSON") != std::string::npos);
  CHECK(error_of(with_header(R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1)).find("dtype I8") != std::string::npos);
  CHECK(error_of(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)).find("need 8") != std::string::npos);
  CHECK(error_of(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 8))
            .find("overlap") != std::string::npos);
  CHECK(error_of(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 4)).find("outside") != std::string::npos);
  std::string huge(8, '\xff');
  CHECK(error_of(huge).find("exceeds the limit") != std::string::npos);
  // limits on a tensor's shape, before anything is allocated for it
  CHECK(error_of(with_header(R"({"a":{"dtype":"F32","shape":[1048576,1048576,2],"data_offsets":[0,4]}})", 4))
            .find("tensor `a` has more elements than the limit of 1099511627776") != std::string::npos);
  std::string rank17 = R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})";
  CHECK(error_of(with_header(rank17, 4)).find("tensor `a` has 17 dimensions; the limit is 16") != std::string::npos);
}

TEST_CASE("F64, F16 and BF16 tensors are converted to float") {
  auto with = [](const std::string& dtype, const std::string& data, int n) {
    std::string h =
        R"({"a":{"dtype":")" + dtype + R"(","shape":[)" + std::to_string(n) + R"(],"data_offsets":[0,)" + std::to_string(data.size()) + "]}}";
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char((h.size() >> (8 * i)) & 0xff);
    return out + h + data;
  };
  double d = 0.25;
  CHECK(parse_safetensors(with("F64", std::string(reinterpret_cast<char*>(&d), 8), 1), "x").tensors.at("a").values[0] == 0.25f);
  CHECK(parse_safetensors(with("F16", std::string("\x00\x3c", 2), 1), "x").tensors.at("a").values[0] == 1.0f);
  CHECK(parse_safetensors(with("BF16", std::string("\x80\x3f", 2), 1), "x").tensors.at("a").values[0] == 1.0f);
}
}
