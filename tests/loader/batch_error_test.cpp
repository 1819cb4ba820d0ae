// The error record: what write_batch_error encodes in a batch's meta, read_batch_error raises
// as the exception the training loop sees. No ring, no process.
#include <catch2/catch.hpp>

#include <cerrno>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "loader/detail/batch_error.hpp"

using namespace ringloader;
using namespace ringloader::loader::detail;

namespace {

std::unique_ptr<BatchMeta> fresh_meta() {
  auto m = std::make_unique<BatchMeta>();
  m->status = BatchStatus::kOk;
  return m;
}

}  // namespace

TEST_CASE("a sample's error record is raised as a SampleError naming sample, file, batch and worker", "[batch_error]") {
  auto m = fresh_meta();
  write_batch_error(*m, ErrorKind::kSample, 17, 4242, 0, "std::out_of_range", "/d/cat.jpg", "bad pixel");
  CHECK(m->status == BatchStatus::kError);
  const auto e = read_batch_error(*m, {3, {16, 17}, {}, true});
  try {
    std::rethrow_exception(e);
  } catch (const SampleError& s) {
    CHECK(std::string(s.what()) ==
          "sample 17 (/d/cat.jpg) of batch 3 raised std::out_of_range in worker pid 4242: bad pixel");
    CHECK(s.index() == 17);
    CHECK(s.path() == "/d/cat.jpg");
    CHECK(s.type() == "std::out_of_range");
  }
  const auto inproc = read_batch_error(*m, {3, {16, 17}, {}, false});
  CHECK_THROWS_WITH(std::rethrow_exception(inproc),
                    "sample 17 (/d/cat.jpg) of batch 3 raised std::out_of_range in the main process: bad pixel");
}

TEST_CASE("a resource error record is raised as a ResourceError with its errno and the batch's indices", "[batch_error]") {
  auto m = fresh_meta();
  write_batch_error(*m, ErrorKind::kResource, 5, 7, EMFILE, "", "", "open: Too many open files");
  try {
    std::rethrow_exception(read_batch_error(*m, {1, {4, 5, 6}, {}, true}));
  } catch (const ResourceError& r) {
    CHECK(std::string(r.what()) == "sample 5 of batch 1 could not be loaded in worker pid 7: open: Too many open "
                                   "files; the batch (indices 4,5,6) was not delivered");
    CHECK(r.error_number() == EMFILE);
    CHECK(r.index() == 5);
  }
}

TEST_CASE("a given-up batch is raised as BatchError (deaths) or TimeoutError (hangs), message as recorded", "[batch_error]") {
  auto m = fresh_meta();
  write_batch_error(*m, ErrorKind::kWorker, 8, 0, 0, "ringloader::WorkerError", "", "workers died in sample 8");
  try {
    std::rethrow_exception(read_batch_error(*m, {2, {8, 9}, {8, 8, 8}, true}));
  } catch (const BatchError& b) {
    CHECK(std::string(b.what()) == "workers died in sample 8");
    CHECK(b.indices() == std::vector<int64_t>{8, 9});
    CHECK(b.culprits() == std::vector<int64_t>{8, 8, 8});
  }
  write_batch_error(*m, ErrorKind::kTimeout, 8, 0, 0, "ringloader::TimeoutError", "", "hung in sample 8");
  try {
    std::rethrow_exception(read_batch_error(*m, {2, {8, 9}, {}, true}));
  } catch (const TimeoutError& t) {
    CHECK(std::string(t.what()) == "hung in sample 8");
    CHECK(t.batch_given_up());
  }
}

TEST_CASE("error record fields are cut to fit, the read copies them out of the record", "[batch_error]") {
  auto m = fresh_meta();
  write_batch_error(*m, ErrorKind::kSample, 0, 1, 0, std::string(500, 't'), std::string(600, 'p'), std::string(3000, 'm'));
  CHECK(std::string(m->error_type).size() == sizeof m->error_type - 1);
  CHECK(std::string(m->error_path).size() == sizeof m->error_path - 1);
  CHECK(std::string(m->error_message).size() == sizeof m->error_message - 1);
  const auto e = read_batch_error(*m, {0, {0}, {}, true});
  m.reset();  // the slot is freed before the throw
  CHECK_THROWS_AS(std::rethrow_exception(e), SampleError);
}

TEST_CASE("join_indices shows 16 indices and how many in all", "[batch_error]") {
  std::vector<int64_t> v(20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i);
  CHECK(join_indices(std::span<const int64_t>(v.data(), 3)) == "0,1,2");
  CHECK(join_indices(v) == "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,... (20 in all)");
}

TEST_CASE("a traceback travels in its own field: a long one never cuts the message short", "[batch_error]") {
  auto m = fresh_meta();
  const std::string message(1500, 'm');
  const std::string tb = "Traceback (most recent call last):\n" + std::string(3000, 't') + "\nKeyError: 3";
  write_batch_error(*m, ErrorKind::kSample, 3, 77, 0, "KeyError", "", message, tb);
  try {
    std::rethrow_exception(read_batch_error(*m, {0, {3}, {}, true}));
  } catch (const SampleError& s) {
    CHECK(s.traceback() == tb);
    const std::string what = s.what();
    CHECK(what.find(message) != std::string::npos);  // whole, though message + traceback > 2048
    CHECK(what.substr(what.size() - tb.size()) == tb);  // the message, then the traceback
  }
  const std::string huge(10000, 'h');  // cut to its field, never past it
  write_batch_error(*m, ErrorKind::kSample, 3, 77, 0, "KeyError", "", "short", huge);
  CHECK(std::string(m->error_traceback).size() == sizeof m->error_traceback - 1);
  CHECK(std::string(m->error_message) == "short");
}
