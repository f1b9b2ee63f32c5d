#include "unit/gpuctl/fake_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gpuorch::gpuctl::testing {
namespace {

// Gives up on a client that stalls, so a broken test fails instead of hanging.
constexpr int kIoTimeoutMs = 10'000;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 422:
      return "Unprocessable Entity";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool WaitReadable(int fd, int stop_fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  int n = ::poll(fds, stop_fd >= 0 ? 2 : 1, kIoTimeoutMs);
  return n > 0 && (fds[0].revents & (POLLIN | POLLHUP)) && !(stop_fd >= 0 && fds[1].revents);
}

bool WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool ReadRequest(int fd, RecordedRequest& request) {
  std::string data;
  char buf[4096];
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  while (true) {
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string head = data.substr(0, header_end);
        size_t line_end = head.find("\r\n");
        std::string request_line = head.substr(0, line_end);
        size_t sp1 = request_line.find(' ');
        size_t sp2 = request_line.find(' ', sp1 + 1);
        request.method = request_line.substr(0, sp1);
        request.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
        size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
          size_t end = head.find("\r\n", pos);
          if (end == std::string::npos) {
            end = head.size();
          }
          std::string line = head.substr(pos, end - pos);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            request.headers[Lower(line.substr(0, colon))] = value;
          }
          pos = end + 2;
        }
        auto it = request.headers.find("content-length");
        content_length = it == request.headers.end() ? 0 : std::stoul(it->second);
      }
    }
    if (header_end != std::string::npos && data.size() >= header_end + 4 + content_length) {
      request.body = data.substr(header_end + 4, content_length);
      return true;
    }
    if (!WaitReadable(fd, -1)) {
      return false;
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      return false;
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

std::string RecordedRequest::Header(const std::string& name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? "" : it->second;
}

bool RecordedRequest::HasHeader(const std::string& name) const {
  return headers.count(Lower(name)) > 0;
}

FakeHttpServer::FakeHttpServer(std::vector<CannedResponse> responses) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    std::perror("FakeHttpServer");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this, r = std::move(responses)]() mutable { Serve(std::move(r)); });
}

FakeHttpServer::~FakeHttpServer() {
  char byte = 0;
  (void)!::write(stop_pipe_[1], &byte, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

std::vector<RecordedRequest> FakeHttpServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeHttpServer::Serve(std::vector<CannedResponse> responses) {
  for (const auto& response : responses) {
    if (!WaitReadable(listen_fd_, stop_pipe_[0])) {
      return;  // stopped, or no client came
    }
    int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      return;
    }
    bool ok = ServeOne(conn, response);
    ::close(conn);
    if (!ok) {
      return;
    }
  }
}

bool FakeHttpServer::ServeOne(int conn, const CannedResponse& response) {
  RecordedRequest request;
  if (!ReadRequest(conn, request)) {
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
  }
  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " " +
                     StatusText(response.status) + "\r\nContent-Type: " + response.content_type +
                     "\r\nConnection: close\r\n";
  if (response.chunks.empty()) {
    head += "Content-Length: " + std::to_string(response.body.size()) + "\r\n\r\n";
    return WriteAll(conn, head + response.body);
  }
  head += "Transfer-Encoding: chunked\r\n\r\n";
  if (!WriteAll(conn, head)) {
    return false;
  }
  for (const auto& chunk : response.chunks) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    if (!WriteAll(conn, size + chunk + "\r\n")) {
      return false;
    }
  }
  return WriteAll(conn, "0\r\n\r\n");
}

uint16_t UnusedLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace gpuorch::gpuctl::testing
