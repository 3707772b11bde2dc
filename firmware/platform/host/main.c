/* Host platform layer: the firmware as a process behind a pseudo-terminal, so any serial
 * client (pyserial, screen, picocom, the project's client) talks to it like to the board.
 *
 * Prints the pty's slave path as the first stdout line, then serves until SIGTERM/SIGINT.
 * We keep our own fd to the slave open: without it the master sees EIO/hangup whenever
 * no client has the port open, and clients can open and close the port at will.
 * Responses go through an in-memory queue drained with poll(): a client that writes a
 * flood before reading never loses an answer, and we keep reading its input (so it
 * never blocks on a full pty while we block on ours) until the queue is very large.
 * The pty stays raw: a client that turns echo on gets it turned off before our next
 * write (keep_raw), so no answer comes back to us as a request more than once. */
#define _DEFAULT_SOURCE 1
#define _DARWIN_C_SOURCE 1
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

/* Stop reading input while this many response bytes wait for the client. */
#define OUTQ_HIGH_WATER ((size_t)16 * 1024 * 1024)
#define READ_CHUNK 4096

typedef struct {
  uint8_t *data;
  size_t head; /* first unsent byte */
  size_t tail; /* end of queued bytes */
  size_t cap;
  int failed;
} outq_t;

static volatile sig_atomic_t g_stop = 0;
static int g_wake_fd = -1; /* write end of the self-pipe that wakes poll() on a signal */

static void on_signal(int sig) {
  int saved = errno;
  g_stop = sig;
  if (g_wake_fd >= 0) {
    ssize_t ignored = write(g_wake_fd, "x", 1);
    (void)ignored;
  }
  errno = saved;
}

static size_t outq_pending(const outq_t *q) { return q->tail - q->head; }

/* app_write_fn: queue everything; the event loop sends it when the pty has room. */
static void outq_write(void *ctx, const uint8_t *bytes, size_t n) {
  outq_t *q = (outq_t *)ctx;
  if (n == 0) return;
  if (q->head > 0 && q->head == q->tail) q->head = q->tail = 0;
  if (q->cap - q->tail < n && q->head > 0) { /* reclaim the sent prefix first */
    memmove(q->data, q->data + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
  }
  if (q->cap - q->tail < n) {
    size_t cap = q->cap ? q->cap : 65536;
    uint8_t *grown;
    while (cap - q->tail < n) cap *= 2;
    grown = (uint8_t *)realloc(q->data, cap);
    if (grown == NULL) {
      if (!q->failed) fprintf(stderr, "tinyml_device: out of memory, dropping output\n");
      q->failed = 1;
      return;
    }
    q->data = grown;
    q->cap = cap;
  }
  memcpy(q->data + q->tail, bytes, n);
  q->tail += n;
}

/* Puts the pty back into raw mode (no echo, no CR/LF translation) if a client changed it
 * (`stty -F PORT sane`): with echo on, the pty would return every answer to the device
 * as a request. Checked right before each write, so at most one write is echoed (and the
 * core drops that echo). The client's speed, VMIN and VTIME are left as they are. */
static void keep_raw(int slave) {
  struct termios now;
  struct termios raw;
  const tcflag_t cmask = CSIZE | PARENB;
  if (tcgetattr(slave, &now) != 0) return;
  raw = now;
  cfmakeraw(&raw);
  if (now.c_iflag != raw.c_iflag || now.c_oflag != raw.c_oflag || now.c_lflag != raw.c_lflag ||
      (now.c_cflag & cmask) != (raw.c_cflag & cmask)) {
    raw.c_cc[VMIN] = now.c_cc[VMIN];
    raw.c_cc[VTIME] = now.c_cc[VTIME];
    if (tcsetattr(slave, TCSANOW, &raw) != 0) perror("tinyml_device: tcsetattr");
  }
}

/* Sends what the pty accepts now. 0 normally, -1 on a fatal write error. */
static int outq_flush(outq_t *q, int fd, int slave) {
  while (outq_pending(q) > 0) {
    ssize_t w;
    keep_raw(slave);
    w = write(fd, q->data + q->head, outq_pending(q));
    if (w > 0) {
      q->head += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EIO)) return 0;
    if (w < 0) {
      perror("tinyml_device: write");
      return -1;
    }
    return 0;
  }
  q->head = q->tail = 0;
  return 0;
}

static uint32_t host_micros(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

static void nap_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = 0;
  ts.tv_nsec = ms * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
  }
}

static int set_flags(int fd, int fl_flags) {
  int fl = fcntl(fd, F_GETFL);
  int fdfl = fcntl(fd, F_GETFD);
  if (fl < 0 || fdfl < 0) return -1;
  if (fcntl(fd, F_SETFL, fl | fl_flags) < 0) return -1;
  return fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
}

static int open_pty(int *master_out, int *slave_out, char *name, size_t name_cap) {
  struct termios tio;
  const char *slave_name;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  int slave;
  if (master < 0) {
    perror("tinyml_device: posix_openpt");
    return -1;
  }
  if (grantpt(master) != 0 || unlockpt(master) != 0 || (slave_name = ptsname(master)) == NULL) {
    perror("tinyml_device: grantpt/unlockpt/ptsname");
    close(master);
    return -1;
  }
  if (strlen(slave_name) + 1 > name_cap) {
    fprintf(stderr, "tinyml_device: pty name too long\n");
    close(master);
    return -1;
  }
  strcpy(name, slave_name);
  slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) {
    perror("tinyml_device: open slave");
    close(master);
    return -1;
  }
  if (tcgetattr(slave, &tio) != 0) {
    perror("tinyml_device: tcgetattr");
    close(slave);
    close(master);
    return -1;
  }
  cfmakeraw(&tio); /* no echo, no CR/LF translation, byte at a time */
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  if (tcsetattr(slave, TCSANOW, &tio) != 0) {
    perror("tinyml_device: tcsetattr");
    close(slave);
    close(master);
    return -1;
  }
  if (set_flags(master, O_NONBLOCK) != 0 || set_flags(slave, 0) != 0) {
    perror("tinyml_device: fcntl");
    close(slave);
    close(master);
    return -1;
  }
  *master_out = master;
  *slave_out = slave;
  return 0;
}

static int install_signals(int wake_pipe[2]) {
  struct sigaction sa;
  if (pipe(wake_pipe) != 0 || set_flags(wake_pipe[0], O_NONBLOCK) != 0 ||
      set_flags(wake_pipe[1], O_NONBLOCK) != 0) {
    perror("tinyml_device: pipe");
    return -1;
  }
  g_wake_fd = wake_pipe[1];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: let poll() return EINTR */
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
    perror("tinyml_device: sigaction");
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static int serve(int master, int slave, int wake_fd, app_t *app, outq_t *q) {
  static uint8_t buf[READ_CHUNK];
  while (!g_stop) {
    struct pollfd fds[2];
    int rc;
    if (outq_flush(q, master, slave) != 0) return -1;

    fds[0].fd = master;
    fds[0].events = (short)((outq_pending(q) < OUTQ_HIGH_WATER ? POLLIN : 0) |
                            (outq_pending(q) > 0 ? POLLOUT : 0));
    fds[0].revents = 0;
    fds[1].fd = wake_fd;
    fds[1].events = POLLIN;
    fds[1].revents = 0;
    rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      perror("tinyml_device: poll");
      return -1;
    }
    if (fds[1].revents != 0) break;

    if ((fds[0].events & POLLIN) && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        app_feed(app, buf, (size_t)n);
      } else if (n == 0 || errno == EIO) {
        nap_ms(20); /* no slave side right now (cannot happen while we hold it): back off */
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        perror("tinyml_device: read");
        return -1;
      }
    } else if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      if (fds[0].revents & POLLNVAL) {
        fprintf(stderr, "tinyml_device: pty closed unexpectedly\n");
        return -1;
      }
      nap_ms(20); /* avoid spinning on a persistent hangup while output is blocked */
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  static app_t app; /* large when the model has many outputs: keep it off the stack */
  outq_t q;
  char name[256];
  int master = -1;
  int slave = -1;
  int wake_pipe[2] = {-1, -1};
  int rc;

  if (argc > 1) {
    int help = strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr,
            "usage: %s\n"
            "Emulates the TinyML device on a pseudo-terminal: prints the serial port path\n"
            "as the first line, then answers serial protocol v1 until SIGTERM or SIGINT.\n",
            argv[0]);
    return help ? 0 : 2;
  }

  memset(&q, 0, sizeof q);
  if (install_signals(wake_pipe) != 0) return 1;
  if (open_pty(&master, &slave, name, sizeof name) != 0) return 1;
  app_init(&app, outq_write, &q, host_micros);

  if (printf("%s\n", name) < 0 || fflush(stdout) != 0) {
    perror("tinyml_device: stdout");
    return 1;
  }

  rc = serve(master, slave, wake_pipe[0], &app, &q);

  close(slave);
  close(master);
  close(wake_pipe[0]);
  g_wake_fd = -1;
  close(wake_pipe[1]);
  free(q.data);
  return rc == 0 ? 0 : 1;
}
