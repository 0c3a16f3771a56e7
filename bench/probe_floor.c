/* probe_floor: what 1,000 health checks a second cost the kernel, with nothing else around them.
 * N kept-alive connections to 127.0.0.1:PORT, one small GET per connection per second, sent in
 * 20 ms batches; answers are read and counted, not parsed. Mode 0 waits with epoll and uses one
 * write and one read per check (what Harrow's prober does); mode 1 submits a batch's sends and
 * receives to io_uring in one call. Prints this process's CPU (user + system) per check: the floor
 * under any prober on this machine. Run by bench/probe-floor.
 *   probe_floor CONNECTIONS PORT MODE SECONDS */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<liburing.h>)
#include <liburing.h>
#define HAVE_URING 1
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static const char kRequest[] = "GET /hc HTTP/1.1\r\nHost: probe\r\nUser-Agent: probe-floor\r\n\r\n";
static char answers[4][4096];

static long run_epoll(const int* fd, int n, int per_batch, double seconds) {
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &e);
  }
  long got = 0;
  int batch = 0, batches = (n + per_batch - 1) / per_batch;
  double start = now(), next = start;
  struct epoll_event ev[256];
  while (now() - start < seconds) {
    double wait = next - now();
    int k = epoll_wait(ep, ev, 256, wait > 0 ? (int)(wait * 1000) + 1 : 0);
    for (int j = 0; j < k; j++)
      if (read(fd[ev[j].data.u32], answers[0], sizeof answers[0]) > 0) got++;
    if (now() >= next) {
      for (int i = batch * per_batch; i < (batch + 1) * per_batch && i < n; i++)
        if (write(fd[i], kRequest, sizeof kRequest - 1) < 0) perror("write");
      batch = (batch + 1) % batches;
      next += 0.02;
    }
  }
  close(ep);
  return got;
}

#ifdef HAVE_URING
static long run_uring(const int* fd, int n, int per_batch, double seconds) {
  struct io_uring ring;
  if (io_uring_queue_init(4096, &ring, 0) != 0) return -1;
  long got = 0;
  int batch = 0, batches = (n + per_batch - 1) / per_batch;
  double start = now(), next = start;
  while (now() - start < seconds) {
    if (now() >= next) {
      for (int i = batch * per_batch; i < (batch + 1) * per_batch && i < n; i++) {
        struct io_uring_sqe* s = io_uring_get_sqe(&ring);
        io_uring_prep_send(s, fd[i], kRequest, sizeof kRequest - 1, 0);
        s->user_data = 0;
        s->flags |= IOSQE_CQE_SKIP_SUCCESS;
        s = io_uring_get_sqe(&ring);
        io_uring_prep_recv(s, fd[i], answers[i % 4], sizeof answers[0], 0);
        s->user_data = 1 + (unsigned)i;
      }
      batch = (batch + 1) % batches;
      next += 0.02;
    }
    double wait = next - now();
    if (wait < 0) wait = 0;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)(wait * 1e9)};
    struct io_uring_cqe* cqe;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->user_data && cqe->res > 0) got++;
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  return got;
}
#endif

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: probe_floor CONNECTIONS PORT MODE(0 epoll, 1 io_uring) SECONDS\n");
    return 2;
  }
  int n = atoi(argv[1]), port = atoi(argv[2]), mode = atoi(argv[3]);
  double seconds = atof(argv[4]);
  if (n < 1 || n > 10000 || seconds <= 0 || seconds > 300) return 2;
  int* fd = calloc((size_t)n, sizeof(int));
  for (int i = 0; i < n; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd[i], (struct sockaddr*)&a, sizeof a) != 0) {
      perror("connect");
      return 1;
    }
    int one = 1;
    setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int per_batch = (n + 49) / 50; /* a fiftieth of the interval, as Harrow's grid */
  double t0 = now(), c0 = cpu_seconds();
  long got;
  if (mode == 0) {
    got = run_epoll(fd, n, per_batch, seconds);
  } else {
#ifdef HAVE_URING
    got = run_uring(fd, n, per_batch, seconds);
#else
    fprintf(stderr, "probe_floor: built without liburing\n");
    return 2;
#endif
  }
  double wall = now() - t0, cpu = cpu_seconds() - c0;
  if (got <= 0) return 1;
  printf("%s: %ld checks in %.1f s, %.2f %% of a core, %.1f us per check\n",
         mode == 0 ? "epoll   " : "io_uring", got, wall, 100 * cpu / wall, cpu / (double)got * 1e6);
  return 0;
}
