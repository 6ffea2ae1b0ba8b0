/*
 * The sending side of bench/security.ts's flood: Node's dgram costs one system call and a few µs
 * of JavaScript per datagram, so two Node processes on a 2-core machine reach 50-80k datagrams/s
 * and take the CPU the victim needs. This sends the same prepared datagrams with sendmmsg(2), a
 * batch per system call, paced to the asked rate.
 *
 *   cc -O2 -Wall -Wextra -o peer-flood bench/flood.c
 *   peer-flood POOL SOURCE_IP SOCKETS GROUP_IP:PORT VICTIM_IP:PORT RATE SECONDS
 *
 * POOL (written by bench/security-driver.ts flood): records of [1 byte destination: 0 the group,
 * 1 the victim][1 byte kind][4-byte big-endian length][the datagram]. The pool is sent round
 * robin, BATCH datagrams per sendmmsg, each batch from the next of SOCKETS sockets (bound to
 * SOURCE_IP, ephemeral ports). At the end, one JSON line on stdout: datagrams handed to the
 * kernel (sent, of which toGroup, per kind), send errors, elapsed ms and this process's CPU ms
 * (user and kernel).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Datagrams per sendmmsg call: at 100,000/s, about 1,600 calls/s. */
#define BATCH 64
#define SOCKETS_MAX 64
#define KINDS 256

struct datagram {
	int to_victim;
	unsigned char kind;
	struct iovec iov;
};

static void fail(const char *what)
{
	fprintf(stderr, "peer-flood: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_until(double s)
{
	struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

/* "a.b.c.d:port" */
static struct sockaddr_in parse_address(char *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char *colon = strrchr(s, ':');
	if (!colon)
		fail("address without a port");
	*colon = '\0';
	if (inet_pton(AF_INET, s, &a.sin_addr) != 1)
		fail("bad address");
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	return a;
}

/* Reads the whole pool file and indexes its records; returns how many. */
static size_t read_pool(const char *file, struct datagram **out)
{
	FILE *f = fopen(file, "rb");
	if (!f)
		fail("open pool");
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	rewind(f);
	unsigned char *buf = malloc((size_t)size);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
		fail("read pool");
	fclose(f);
	size_t n = 0, cap = 1024;
	struct datagram *pool = malloc(cap * sizeof *pool);
	for (size_t off = 0; off + 6 <= (size_t)size;) {
		size_t len = (size_t)buf[off + 2] << 24 | (size_t)buf[off + 3] << 16 |
			     (size_t)buf[off + 4] << 8 | buf[off + 5];
		if (off + 6 + len > (size_t)size)
			fail("truncated pool");
		if (n == cap)
			pool = realloc(pool, (cap *= 2) * sizeof *pool);
		if (!pool)
			fail("pool memory");
		pool[n++] = (struct datagram){ buf[off] == 1, buf[off + 1], { buf + off + 6, len } };
		off += 6 + len;
	}
	*out = pool;
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: %s POOL SOURCE_IP SOCKETS GROUP_IP:PORT VICTIM_IP:PORT RATE SECONDS\n",
			argv[0]);
		return 2;
	}
	struct datagram *pool;
	size_t pool_n = read_pool(argv[1], &pool);
	struct in_addr source;
	if (pool_n < BATCH || inet_pton(AF_INET, argv[2], &source) != 1)
		fail("bad pool or source address");
	int sockets_n = atoi(argv[3]);
	if (sockets_n < 1 || sockets_n > SOCKETS_MAX)
		fail("bad socket count");
	struct sockaddr_in to[2] = { parse_address(argv[4]), parse_address(argv[5]) };
	double rate = atof(argv[6]), seconds = atof(argv[7]);

	int fds[SOCKETS_MAX];
	for (int i = 0; i < sockets_n; i++) {
		struct sockaddr_in bound = { .sin_family = AF_INET, .sin_addr = source };
		unsigned char ttl = 1, loop = 0;
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&bound, sizeof bound) < 0 ||
		    setsockopt(fds[i], IPPROTO_IP, IP_MULTICAST_IF, &source, sizeof source) < 0 ||
		    setsockopt(fds[i], IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0 ||
		    setsockopt(fds[i], IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) < 0)
			fail("socket");
	}

	struct mmsghdr msgs[BATCH];
	unsigned long long sent = 0, to_group = 0, errors = 0, per_kind[KINDS] = { 0 };
	int last_errno = 0, kinds_seen = 0;
	size_t next = 0;
	double t0 = now_s(), end = t0 + seconds, t;
	for (unsigned long batch = 0; (t = now_s()) < end; batch++) {
		/* Paced to the average rate: wait until a whole batch is due (behind: no wait). */
		double due_at = t0 + (double)(sent + BATCH) / rate;
		if (due_at > t) {
			sleep_until(due_at < end ? due_at : end);
			if (due_at >= end)
				break;
		}
		memset(msgs, 0, sizeof msgs);
		for (int k = 0; k < BATCH; k++, next = (next + 1) % pool_n) {
			struct datagram *d = &pool[next];
			msgs[k].msg_hdr.msg_name = &to[d->to_victim];
			msgs[k].msg_hdr.msg_namelen = sizeof to[0];
			msgs[k].msg_hdr.msg_iov = &d->iov;
			msgs[k].msg_hdr.msg_iovlen = 1;
			to_group += !d->to_victim;
			per_kind[d->kind]++;
			if (d->kind >= kinds_seen)
				kinds_seen = d->kind + 1;
		}
		/* Blocking sockets: a full send buffer waits. An error is about the first datagram of
		 * what is left: count it, skip it, send the rest. */
		int fd = fds[batch % (unsigned long)sockets_n];
		for (int off = 0; off < BATCH;) {
			int r = sendmmsg(fd, msgs + off, (unsigned)(BATCH - off), 0);
			if (r < 0) {
				errors++;
				last_errno = errno;
				off++;
			} else
				off += r;
		}
		sent += BATCH;
	}
	double elapsed = now_s() - t0;

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	/* Kernel time is most of it: sending, and on one host the receivers' softirq work too. */
	double user_ms = (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3;
	double sys_ms = (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
	printf("{\"sent\":%llu,\"toGroup\":%llu,\"errors\":%llu,\"lastError\":\"%s\",\"ms\":%.1f,"
	       "\"cpuMs\":%.1f,\"userMs\":%.1f,\"sysMs\":%.1f,\"perKind\":[",
	       sent, to_group, errors, last_errno ? strerror(last_errno) : "", elapsed * 1e3,
	       user_ms + sys_ms, user_ms, sys_ms);
	for (int k = 0; k < kinds_seen; k++)
		printf("%s%llu", k ? "," : "", per_kind[k]);
	printf("]}\n");
	return 0;
}
