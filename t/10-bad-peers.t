# Bad peers, part 2 (t/03 has the first ones). Each hostile client must be closed, or its command
# refused, with one readable info line; no worker may crash; and a normal FFmpeg publisher and
# FFmpeg player on the same nginx (the "guard", started before the attack) must keep decoding at
# full rate while it goes on, which our client checks second by second as well.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();

our $FPS = 25;                  # test media: 25 fps H.264 + 44.1 kHz AAC, 1024 samples a frame
our $AFPS = 44100 / 1024;

# Starts the guard: an FFmpeg publisher on live/guard, an FFmpeg player decoding $secs seconds of
# it and our client counting the frames of every second. Returns once all three are on and frames
# flow; the attack should be over $secs - 1.5 s later at the latest.
sub guard_start {
    my ($port, $secs) = @_;
    $secs ||= 4;
    my $url = "rtmp://127.0.0.1:$port/live/guard";
    my $pub = publish($url, loop => 1, timeout => 60);
    my $ff = in_background(sub { count_frames($url, $secs) });
    my $stats = in_background(sub { play_stats($url, $secs) });
    my $on = wait_until(sub {
        log_lines(qr/rtmp: live: publish "guard"/) == 1 && log_lines(qr/rtmp: live: play "guard"/) == 2
    }, 10);
    ok($on, 'guard: publisher and players are on') or diag(publisher_log($pub));
    Time::HiRes::sleep(0.3);
    return { url => $url, pub => $pub, ff => $ff, stats => $stats, secs => $secs };
}

# Checks the guard went on undisturbed: FFmpeg decoded >= 90 % of the frames of its $secs seconds,
# our client got frames in every second, the publisher is still running.
sub guard_check {
    my ($g) = @_;
    my $secs = $g->{secs};
    my ($v, $a, $err) = result_of($g->{ff}, $secs + 20);
    my $want_v = int(0.9 * $FPS * $secs);
    my $want_a = int(0.9 * $AFPS * $secs);
    cmp_ok($v // 0, '>=', $want_v, "guard: FFmpeg decoded >= $want_v video frames in $secs s")
        or diag($err);
    cmp_ok($a // 0, '>=', $want_a, "guard: FFmpeg decoded >= $want_a audio frames in $secs s");
    my ($st) = result_of($g->{stats}, $secs + 20);
    my @per = @{ $st->{seconds} || [] };
    shift @per while @per && !$per[0];    # before the publisher's first frames
    pop @per;                              # the last second may be cut short
    my @gaps = grep { $_ < 10 } @per;
    ok(@per >= $secs - 2 && !@gaps, 'guard: our player got >= 10 video frames in every second')
        or diag("video frames per second: @{ $st->{seconds} || [] }\n", $st->{stderr} // '');
    is(wait_publisher($g->{pub}, 0), undef, 'guard: publisher still running')
        or diag(publisher_log($g->{pub}));
    stop($g->{pub});
}

# Reads until the server closes the connection; returns (closed, bytes received).
sub drain {
    my ($s, $secs) = @_;
    my $got = '';
    my $closed = 0;
    my $sel = IO::Select->new($s);
    my $deadline = Time::HiRes::time() + ($secs // 5);
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        next unless $sel->can_read($left);
        my $r = sysread($s, $got, 65536, length $got);
        if (!$r) { $closed = 1; last }
    }
    return ($closed, $got);
}

# $n (default 1) info lines in the error log match $re: one per hostile client.
sub lines_are {
    my ($re, $n, $name) = @_;
    my @l = log_lines($re);
    is(scalar(@l), $n // 1, "log: $name") or diag(join "\n", @l);
    my @not_info = grep { !/\[info\]/ } @l;
    ok(!@not_info, "log: $name, at info level") or diag(join "\n", @not_info);
}

sub connect_cmd {
    my ($port, $app) = @_;
    $app //= 'live';
    return amf_cmd('connect', 1, amf_obj(app => amf_str($app), tcUrl => amf_str("rtmp://127.0.0.1:$port/$app")));
}

# A client that did the handshake (and sent nothing else).
sub handshaken {
    my ($port) = @_;
    my $s = rtmp_connect_raw($port);
    ok($s && rtmp_handshake($s), 'hostile client: handshake');
    return $s;
}

# Sends FLV tags ([type, timestamp, payload], from flv_tags) on a publishing socket, paced at real
# time by their own timestamps. $opt{ts}->($tag) gives the timestamp to send instead (undef: the tag
# is left out); with $opt{delta}, video after the first message goes with fmt 1 headers carrying
# the difference to the previous one modulo 2^32 (a "negative" delta is a huge extended one).
# Returns the number of video messages sent.
sub send_tags {
    my ($s, $msid, $tags, %opt) = @_;
    my $t0 = Time::HiRes::time();
    my $base = $tags->[0][1];
    my $n = 0;
    my $prev_video;
    for my $t (@$tags) {
        my ($type, $ts, $payload) = @$t;
        my $wait = $t0 + ($ts - $base) / 1000 - Time::HiRes::time();
        Time::HiRes::sleep($wait) if $wait > 0;
        my $send_ts = $opt{ts} ? $opt{ts}->($t) : $ts;
        next unless defined $send_ts;
        my $cs = $type == 8 ? 4 : $type == 9 ? 6 : 5;
        my @hdr = (timestamp => $send_ts);
        if ($type == 9 && $opt{delta} && defined $prev_video) {
            @hdr = (fmt => 1, timestamp => ($send_ts - $prev_video) % 2**32);
        }
        $prev_video = $send_ts if $type == 9;
        send_bytes($s, rtmp_message($cs, $type, $msid, $payload, @hdr, chunk_size => 4096)) or return -1;
        $n++ if $type == 9;
    }
    return $n;
}

# The test media's audio and video tags (no metadata) of its first $secs seconds.
sub media_tags {
    my ($secs) = @_;
    return grep { $_->[0] != 18 && $_->[1] < $secs * 1000 } flv_tags(media());
}

sub is_avc_header { $_[0][0] == 9 && substr($_[0][2], 0, 2) eq "\x17\x00" }


# Peak resident memory (kB) of the block's worker; reset_hwm() starts a new peak at the current
# resident memory (false if the kernel does not let us).
sub worker_hwm {
    open my $fh, '<', '/proc/' . (worker_pid() // 0) . '/status' or return 0;
    local $/;
    return <$fh> =~ /^VmHWM:\s+(\d+)/m ? $1 : 0;
}

sub reset_hwm {
    open my $fh, '>', '/proc/' . (worker_pid() // 0) . '/clear_refs' or return 0;
    print $fh "5\n";
    return close $fh;
}

# AMF3 (after the AVM+ marker): an array of $n items, item 0 = [1], each next item an array of
# $refs references to the item before it. Every reference is a copy when decoded: with 2 the
# decoded value doubles at each item, with 1 it nests one level deeper.
sub amf3_ref_chain {
    my ($n, $refs, $first) = @_;    # $first: index of item 0 in the message's object table
    my $u29 = sub {
        my $v = shift;
        return chr($v) if $v < 0x80;
        return chr(0x80 | ($v >> 7)) . chr($v & 0x7f) if $v < 0x4000;
        return chr(0x80 | ($v >> 14)) . chr(0x80 | (($v >> 7) & 0x7f)) . chr($v & 0x7f);
    };
    my $b = "\x09" . $u29->(($n << 1) | 1) . "\x01" . "\x09\x03\x01\x04\x01";
    for my $k (1 .. $n - 1) {
        $b .= "\x09" . $u29->(($refs << 1) | 1) . "\x01" . ("\x09" . $u29->(($first + $k - 1) << 1)) x $refs;
    }
    return $b;
}

run_tests();

__DATA__

=== TEST 1: wrong handshake version byte (RTMPE 6, 0xff, 0) is refused at once
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
for my $v (6, 0xff, 0) {
    my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
    my $t0 = Time::HiRes::time();
    send_bytes($s, chr($v) . ("\x00" x 1536) . ("\x00" x 1536));
    my ($closed, $got) = main::drain($s, 5);
    ok($closed, "version $v: closed");
    cmp_ok(Time::HiRes::time() - $t0, '<', 2, "version $v: at once, not by timeout");
    is(length $got, 0, "version $v: no S0 S1 S2 sent");
}
main::guard_check($g);
main::lines_are(qr/rtmp: closing: protocol error: handshake: RTMPE \(encrypted RTMP, version 6\) is not supported/, 1, 'RTMPE');
main::lines_are(qr/rtmp: closing: protocol error: handshake: unsupported RTMP version 255/, 1, 'version 255');
main::lines_are(qr/rtmp: closing: protocol error: handshake: unsupported RTMP version 0\b/, 1, 'version 0');
main::lines_are(qr/rtmp: closing: protocol error/, 3, 'no other protocol error');
--- error_log
/\[info\] .*rtmp: closing: protocol error: handshake: RTMPE \(encrypted RTMP, version 6\) is not supported/
/\[info\] .*rtmp: closing: protocol error: handshake: unsupported RTMP version 255/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 2: handshake sent one byte at a time succeeds, and quickly
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    timeout 10s;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
my $bytewise = sub {
    my ($bytes, $keep) = @_;
    for my $i (0 .. length($bytes) - 1 - ($keep // 0)) {
        send_bytes($s, substr($bytes, $i, 1)) or return 0;
        Time::HiRes::sleep(0.0002);
    }
    return 1;
};
my $t0 = Time::HiRes::time();
my $c1 = pack('NN', 0, 0) . join('', map { chr int rand 256 } 1 .. 1528);
ok($bytewise->("\x03" . $c1, 1), 'C0 C1 sent byte by byte but the last');
is(read_bytes($s, 1, 0.3), undef, 'no answer before C1 is complete');
send_bytes($s, substr($c1, -1));
my $t1 = Time::HiRes::time();
my $s012 = read_bytes($s, 1 + 1536 + 1536, 3);
ok(defined $s012, 'S0 S1 S2 arrive');
cmp_ok(Time::HiRes::time() - $t1, '<', 1, 'within 1 s of the last C1 byte');
is(ord(substr($s012 // "\0", 0, 1)), 3, 'S0 is version 3');
ok(defined $s012 && substr($s012, 1537, 1536) eq $c1, 'S2 echoes C1');
ok($bytewise->(substr($s012 // '', 1, 1536)), 'C2 sent byte by byte');
ok($bytewise->(rtmp_chunk(3, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT))), 'connect sent byte by byte');
ok(read_until($s, qr/NetConnection\.Connect\.Success/, 3), 'connect succeeds');
ok($bytewise->(rtmp_chunk(3, 20, 0, amf_cmd('createStream', 2, amf_null()))), 'createStream sent byte by byte');
ok(read_until($s, qr/_result/, 3), 'createStream answered');
cmp_ok(Time::HiRes::time() - $t0, '<', 6, 'all of it in a few seconds');
main::guard_check($g);
close $s;
main::lines_are(qr/rtmp: connect app="live" flashver="" /, 1, 'the bytewise client connected');
main::lines_are(qr/rtmp: closing: (?!client closed the connection|recv\(\) failed)/, 0, 'nobody closed by the server');
--- error_log
/\[info\] .*rtmp: connect app="live" flashver="" tcurl=/
--- no_error_log
[alert]
[emerg]
exited on signal
rtmp: closing: protocol error



=== TEST 3: handshake never finished is closed by "timeout" (2 s), even when trickled
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    timeout 2s;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
# stuck: C0 C1 sent, S0 S1 S2 read, C2 never sent
my $stuck = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
my $t0 = Time::HiRes::time();
send_bytes($stuck, "\x03" . ("\x00" x 1536));
ok(read_bytes($stuck, 3073, 2), 'stuck client: S0 S1 S2 received');
# trickle: C0 then one byte of C1 every 100 ms, which never ends the handshake in 2 s
my $trickle = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
setsockopt($trickle, IPPROTO_TCP, TCP_NODELAY, 1);
send_bytes($trickle, "\x03");
my %closed_at;
my %sock = (stuck => $stuck, trickle => $trickle);
while (keys(%closed_at) < 2 && Time::HiRes::time() - $t0 < 6) {
    for my $name (grep { !$closed_at{$_} } keys %sock) {
        my $sel = IO::Select->new($sock{$name});
        if ($sel->can_read(0)) {
            my $r = sysread($sock{$name}, my $buf, 65536);
            $closed_at{$name} = Time::HiRes::time() - $t0 unless $r;
        }
    }
    send_bytes($trickle, "\x00") unless $closed_at{trickle};
    Time::HiRes::sleep(0.1);
}
for my $name (qw(stuck trickle)) {
    ok($closed_at{$name}, "$name client is closed");
    cmp_ok($closed_at{$name} // 99, '>=', 1.5, "$name: not before the 2 s timeout");
    cmp_ok($closed_at{$name} // 99, '<', 3.5, "$name: soon after the 2 s timeout");
}
main::guard_check($g);
main::lines_are(qr/rtmp: closing: handshake timed out/, 2, 'handshake timed out (2 clients)');
--- error_log
/\[info\] .*rtmp: closing: handshake timed out/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 4: Set Chunk Size 1, then connect, createStream and play in 1-byte chunks
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', 1)));
my $cmd = main::connect_cmd($TEST_NGINX_RTMP_PORT);
my $connect = rtmp_chunk(3, 20, 0, $cmd, chunk_size => 1);
is(length $connect, 12 + 2 * length($cmd) - 1, 'connect cut into ' . length($cmd) . ' chunks');
send_bytes($s, $connect);
ok(read_until($s, qr/NetConnection\.Connect\.Success/, 3), 'connect succeeds');
send_bytes($s, rtmp_chunk(3, 20, 0, amf_cmd('createStream', 2, amf_null()), chunk_size => 1));
ok(read_until($s, qr/_result/, 3), 'createStream answered');
send_bytes($s, rtmp_chunk(8, 20, 1, amf_cmd('play', 3, amf_null(), amf_str('guard')), chunk_size => 1));
ok(read_until($s, qr/NetStream\.Play\.Start/, 3), 'play starts');
my $got;
read_until($s, qr/\A(?!)/, 1, $got);
cmp_ok(length($got // ''), '>', 10_000, 'the 1-byte-chunk client receives the stream');
# a 100 kB message in 1-byte chunks (200 kB on the wire) is parsed in no time as well
my $t0 = Time::HiRes::time();
send_bytes($s, rtmp_chunk(5, 18, 1, amf_str('onTextData') . amf_obj(text => "\x0c" . pack('N', 100_000) . ('x' x 100_000)),
                          chunk_size => 1));
send_bytes($s, rtmp_chunk(3, 20, 0, amf_cmd('anything', 7, amf_null()), chunk_size => 1));
ok(read_until($s, qr/_result\x00\Q${\ pack('d>', 7)}\E/, 3), 'a command after it is answered');
cmp_ok(Time::HiRes::time() - $t0, '<', 1.5, 'soon');
main::guard_check($g);
close $s;
main::lines_are(qr/rtmp: closing: (?!client closed the connection|recv\(\) failed)/, 0, 'nobody closed by the server');
--- error_log
/\[info\] .*rtmp: connect app="live" flashver="" /
--- no_error_log
[alert]
[emerg]
exited on signal
rtmp: closing: protocol error



=== TEST 5: chunk stream ids 2, 63, 64, 319, 320, 65599, then more than the server keeps
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
send_bytes($s, rtmp_message(2, 1, 0, pack('N', 4096)));
send_bytes($s, rtmp_message(64, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT)));
ok(read_until($s, qr/NetConnection\.Connect\.Success/, 3), 'connect on csid 64 (2-byte header)');
my $tid = 1;
my $answered = sub {
    my ($csid) = @_;
    $tid++;
    send_bytes($s, rtmp_message($csid, 20, 0, amf_cmd('anything', $tid, amf_null()), chunk_size => 4096));
    return read_until($s, qr/_result\x00\Q${\ pack('d>', $tid)}\E/, 3);
};
for my $csid (63, 319, 320, 65599, 2) {
    ok($answered->($csid), "command on csid $csid answered");
}
# 6 ids used; 1018 more make the 1024 the server keeps
my $more = join '', map { rtmp_message($_, 5, 0, pack('N', 2_500_000)) } 1000 .. 2017;
ok(send_bytes($s, $more), '1018 more chunk stream ids');
ok($answered->(2017), 'still served with 1024 chunk stream ids');
send_bytes($s, rtmp_message(40000, 5, 0, pack('N', 2_500_000)));
ok(is_closed($s, 3), 'closed at chunk stream id number 1025');

# the same with half messages: 64 chunk streams may hold one, not 65
my $p = main::handshaken($TEST_NGINX_RTMP_PORT);
send_bytes($p, rtmp_message(3, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT)));
ok(read_until($p, qr/NetConnection\.Connect\.Success/, 3), 'second client connects');
my $half = sub { my $c = shift; substr(rtmp_message($c, 18, 1, 'x' x 1000), 0, length(rtmp_basic_header(0, $c)) + 11 + 128) };
send_bytes($p, join '', map { $half->($_) } 10 .. 73);
ok(!is_closed($p, 0.5), '64 partial messages are kept');
send_bytes($p, $half->(74));
ok(is_closed($p, 3), 'closed at the 65th');
main::guard_check($g);
main::lines_are(qr/rtmp: closing: protocol error: chunk: over 1024 distinct chunk stream ids/, 1, 'over 1024 ids');
main::lines_are(qr/rtmp: closing: protocol error: chunk: over 64 chunk streams with partial messages/, 1, 'over 64 partial');
--- error_log
/\[info\] .*rtmp: closing: protocol error: chunk: over 1024 distinct chunk stream ids/
/\[info\] .*rtmp: closing: protocol error: chunk: over 64 chunk streams with partial messages/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 6: fmt 1, 2 and 3 chunk headers with no header before them on their chunk stream
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my $cmd = amf_cmd('createStream', 2, amf_null());
my @cases = (
    # [fmt, csid, connect first]
    [1, 5, 1], [2, 3, 0], [3, 7, 1], [3, 1000, 0], [2, 300, 1],
);
for my $c (@cases) {
    my ($fmt, $csid, $connect) = @$c;
    my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
    if ($connect) {
        send_bytes($s, rtmp_message(3, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT)));
        read_until($s, qr/NetConnection\.Connect\.Success/, 3);
    }
    send_bytes($s, rtmp_message($csid, 20, 0, $cmd, fmt => $fmt, timestamp => 40));
    my ($closed, $got) = main::drain($s, 3);
    ok($closed, "fmt $fmt first on csid $csid: closed");
    unlike($got, qr/_result\x00\Q${\ pack('d>', 2)}\E/, "fmt $fmt first on csid $csid: not answered");
    main::lines_are(qr/rtmp: closing: protocol error: chunk: chunk stream $csid continues a header it never sent/,
                    1, "csid $csid continues a header it never sent");
}
main::guard_check($g);
--- error_log
/\[info\] .*rtmp: closing: protocol error: chunk: chunk stream 5 continues a header it never sent/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 7: timestamps going backwards on a publisher's video
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
    application bad { live on; idle_streams off; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT, 6);
my ($s, $msid) = rtmp_raw_publish($TEST_NGINX_RTMP_PORT, 'bad', 'back');
ok($s, 'hostile publisher publishes');
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/bad/back";
my $ff = in_background(sub { decoded_frames($url, 20) });
my $st = in_background(sub { play_stats($url, 10) });
ok(wait_until(sub { log_lines(qr/rtmp: live: play "back"/) == 2 }, 10), 'its players joined');
my @tags = main::media_tags(4);
my $n = grep { $_->[0] == 9 && !main::is_avc_header($_) } @tags;
my $sent = main::send_tags($s, $msid, \@tags, delta => 1, ts => sub {
    my ($t) = @_;
    my $ts = $t->[1];
    return $ts if $t->[0] != 9 || $ts < 1000;
    return $ts - 900 if $ts < 2000;                             # 900 ms back, then on
    return 0xffff_fc00 + ($ts - 2000) if $ts < 3000;            # up to the 32-bit wrap
    return ($ts / 40) % 2 ? $ts - 3000 : $ts - 2500;            # zigzag 500 ms back and forth
});
cmp_ok($sent, '>=', 100, "hostile publisher sent $sent video messages");
ok(!is_closed($s, 0.5), 'the publisher is not closed for its timestamps');
shutdown($s, 2);
my ($v, $a, $err) = result_of($ff, 30);
cmp_ok($v, '>=', int(0.9 * $n), "FFmpeg player of the stream decoded >= 90 % of its $n frames")
    or diag($err);
my ($r) = result_of($st, 30);
cmp_ok($r->{video}, '>=', $n, "our player got all $n frames") or diag($r->{stderr});
like($r->{stderr}, qr/server closed the connection/, 'players closed when it left');
main::guard_check($g);
main::lines_are(qr/rtmp: closing: publisher left and "idle_streams" is off/, 2, 'its players closed');
main::lines_are(qr/rtmp: closing: (?!client closed the connection|recv\(\) failed|publisher left)/, 0,
                'nobody else closed by the server');
--- error_log
/\[info\] .*rtmp: live: unpublish "back"/
--- no_error_log
[alert]
[emerg]
exited on signal
rtmp: closing: protocol error



=== TEST 8: video frames before any sequence header
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
    application bad { live on; idle_streams off; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT, 6);
my ($s, $msid) = rtmp_raw_publish($TEST_NGINX_RTMP_PORT, 'bad', 'nohdr');
ok($s, 'hostile publisher publishes');
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/bad/nohdr";
my $ff = in_background(sub { decoded_frames($url, 20) });
my $st = in_background(sub { play_stats($url, 10) });
ok(wait_until(sub { log_lines(qr/rtmp: live: play "nohdr"/) == 2 }, 10), 'its players joined');
my @tags = main::media_tags(4);
my ($hdr) = grep { main::is_avc_header($_) } @tags;
# video of the first 2 s (a whole GOP) without the header, then the header, then the next GOP
my @order = ((grep { !main::is_avc_header($_) && $_->[1] < 2000 } @tags),
             [9, 2000, $hdr->[2]],
             (grep { !main::is_avc_header($_) && $_->[1] >= 2000 } @tags));
my $after = grep { $_->[0] == 9 && $_->[1] >= 2000 } @order;     # the header and 50 frames
my $sent = main::send_tags($s, $msid, \@order);
ok(!is_closed($s, 0.3), 'the publisher is not closed');
my $late = in_background(sub { count_frames($url, 1) });        # joins with the GOP cache
sleep 1;
my ($lv, $la, $lerr) = result_of($late, 20);
cmp_ok($lv, '>=', 20, 'a player joining after the header decodes') or diag($lerr);
shutdown($s, 2);
my ($v, $a, $err) = result_of($ff, 30);
# Players start at the sequence header: frames before it would make FFmpeg give up probing.
cmp_ok($v, '>=', int(0.9 * ($after - 1)), "FFmpeg player (joined before) decoded >= 90 % of the "
       . ($after - 1) . ' frames after the header') or diag($err =~ s/^.*(?:No start code|Error splitting|missing picture|Error while decoding).*\n//mgr);
my ($r) = result_of($st, 30);
cmp_ok($r->{video}, '>=', $after - 1, 'our player got the header and the frames after it') or diag($r->{stderr});
cmp_ok($r->{video}, '<=', $after, 'and none of the headerless ones');
main::guard_check($g);
main::lines_are(qr/rtmp: closing: (?!client closed the connection|recv\(\) failed|publisher left)/, 0,
                'nobody closed by the server');
--- error_log
/\[info\] .*rtmp: live: publish "nohdr"/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 9: AMF nested 10,000 deep in connect is refused, no stack overflow
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my $N = 10_000;
my %amf0 = (
    object        => ("\x03\x00\x01a" x $N) . "\x05" . ("\x00\x00\x09" x $N),
    'strict array' => ("\x0a\x00\x00\x00\x01" x $N) . "\x05",
    'ecma array'  => ("\x08\x00\x00\x00\x01\x00\x01a" x $N) . "\x05" . ("\x00\x00\x09" x $N),
    'typed object' => ("\x10\x00\x01T\x00\x01a" x $N) . "\x05" . ("\x00\x00\x09" x $N),
);
# a command object of $N nested objects / strict arrays / ... : connect, createStream after connect
for my $kind (sort keys %amf0) {
    my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
    send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', 65536)));
    send_bytes($s, rtmp_chunk(3, 20, 0, amf_str('connect') . amf_num(1) . $amf0{$kind}, chunk_size => 65536));
    my ($closed, $got) = main::drain($s, 3);
    ok($closed, "connect with $N nested AMF0 ${kind}s: closed");
    unlike($got, qr/NetConnection\.Connect\.Success/, "$kind: not connected");
}
my $s = rtmp_raw_connect($TEST_NGINX_RTMP_PORT, 'live');
send_bytes($s, rtmp_chunk(3, 20, 0, amf_cmd('createStream', 2, $amf0{object}), chunk_size => 128));
ok(is_closed($s, 3), "createStream with $N nested objects after connect: closed");
# AMF3: connect as a type 17 command whose object is $N nested arrays / objects
my %amf3 = (
    array  => ("\x09\x03\x01" x $N) . "\x01",
    object => "\x0a\x0b\x01" . ("\x03a\x0a\x01" x ($N - 1)) . "\x03a\x01" . ("\x01" x $N),
);
for my $kind (sort keys %amf3) {
    my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
    send_bytes($s, rtmp_chunk(3, 17, 0, "\x00" . amf_str('connect') . amf_num(1) . "\x11" . $amf3{$kind}));
    my ($closed, $got) = main::drain($s, 3);
    ok($closed, "connect with $N nested AMF3 ${kind}s: closed");
    unlike($got, qr/NetConnection\.Connect\.Success/, "AMF3 $kind: not connected");
}
main::guard_check($g);
main::lines_are(qr/rtmp: closing: undecodable command on stream 0: AMF0 nesting deeper than 64/, 5,
                'AMF0 nesting (5 clients)');
main::lines_are(qr/rtmp: closing: undecodable command on stream 0: AMF3: nesting deeper than 64/, 2,
                'AMF3 nesting (2 clients)');
--- error_log
/\[info\] .*rtmp: closing: undecodable command on stream 0: AMF0 nesting deeper than 64/
/\[info\] .*rtmp: closing: undecodable command on stream 0: AMF3: nesting deeper than 64/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 10: thousands of createStream beyond max_streams 8
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    max_streams 8;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT, 5);
my $rss0 = worker_rss();
# 5000 createStream at once: 8 answered, the 9th refused and the client closed
my $s = rtmp_raw_connect($TEST_NGINX_RTMP_PORT, 'live');
send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', 4096)));
send_bytes($s, join '', map { rtmp_chunk(3, 20, 0, amf_cmd('createStream', $_, amf_null()), chunk_size => 4096) } 2 .. 5001);
my ($closed, $got) = main::drain($s, 5);
ok($closed, 'the flooding client is closed');
my $results = () = $got =~ /\x02\x00\x07_result/g;
is($results, 8, '8 streams created');
like($got, qr/_error.*NetConnection\.Call\.Failed.*too many streams/s, 'the 9th refused with _error');
# 2000 createStream + deleteStream: never more than 1 open, always served
my $c = rtmp_raw_connect($TEST_NGINX_RTMP_PORT, 'live');
setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
my $ok = 0;
my $t0 = Time::HiRes::time();
for my $i (1 .. 2000) {
    my $id = rtmp_create_stream($c, 2, 3) // last;
    send_bytes($c, rtmp_chunk(3, 20, 0, amf_cmd('deleteStream', 0, amf_null(), amf_num($id))));
    $ok++;
}
is($ok, 2000, '2000 createStream/deleteStream cycles served');
cmp_ok(Time::HiRes::time() - $t0, '<', 2.5, 'in no time');
ok(!is_closed($c, 0.2), 'that client is still on');
my $rss1 = worker_rss();
cmp_ok($rss1 - $rss0, '<', 8 * 1024, "worker memory grew by less than 8 MB ($rss0 -> $rss1 kB)");
close $c;
main::guard_check($g);
main::lines_are(qr/rtmp: closing: too many streams \("max_streams"\)/, 1, 'too many streams');
--- error_log
/\[info\] .*rtmp: closing: too many streams \("max_streams"\)/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 11: createStream, publish, play and media before connect; publish before createStream
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
my %before = (
    createStream => rtmp_chunk(3, 20, 0, amf_cmd('createStream', 2, amf_null())),
    publish      => rtmp_chunk(8, 20, 1, amf_cmd('publish', 3, amf_null(), amf_str('guard'), amf_str('live'))),
    play         => rtmp_chunk(8, 20, 1, amf_cmd('play', 3, amf_null(), amf_str('guard'))),
    video        => rtmp_chunk(6, 9, 1, "\x17\x01\x00\x00\x00" . ('x' x 100)),
);
for my $what (sort keys %before) {
    my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
    send_bytes($s, $before{$what});
    my ($closed, $got) = main::drain($s, 3);
    ok($closed, "$what before connect: closed");
    unlike($got, qr/_result|NetStream/, "$what before connect: not answered");
}
my $s = rtmp_raw_connect($TEST_NGINX_RTMP_PORT, 'live');
send_bytes($s, rtmp_chunk(8, 20, 1, amf_cmd('publish', 3, amf_null(), amf_str('guard2'), amf_str('live'))));
my ($closed, $got) = main::drain($s, 3);
ok($closed, 'publish before createStream: closed');
like($got, qr/NetStream\.Publish\.BadName/, 'publish before createStream: BadName');
main::guard_check($g);
main::lines_are(qr/rtmp: closing: command before connect/, 3, 'command before connect (3 clients)');
main::lines_are(qr/rtmp: closing: media before connect/, 1, 'media before connect');
main::lines_are(qr/rtmp: closing: publish: bad stream id or name/, 1, 'publish before createStream');
is(scalar(log_lines(qr/rtmp: live: p(?:ublish|lay) "guard"/)), 3, 'none of them published or played');
--- error_log
/\[info\] .*rtmp: closing: command before connect/
/\[info\] .*rtmp: closing: media before connect/
--- no_error_log
[alert]
[emerg]
exited on signal



=== TEST 12: AMF3 references that copy what they point to: no expansion bomb, no depth bypass
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $g = main::guard_start($TEST_NGINX_RTMP_PORT);
# first (while the worker's heap is small) in a publisher's metadata (AMF3 data, type 15), which
# is decoded, kept and re-encoded for players: the bomb's value is ignored, the publisher served
my ($p, $msid) = rtmp_raw_publish($TEST_NGINX_RTMP_PORT, 'live', 'meta');
ok($p, 'publisher of live/meta');
ok(main::reset_hwm(), 'worker peak memory reset');
my $hwm0 = main::worker_hwm();
# onMetaData's object { x: <bomb> }: entry 0, the bomb's array entry 1, item 0 entry 2
my $meta = "\x00" . amf_str('@setDataFrame') . amf_str('onMetaData')
    . "\x11\x0a\x0b\x01" . "\x03x" . main::amf3_ref_chain(18, 2, 2) . "\x01";
send_bytes($p, rtmp_chunk(5, 15, $msid, $meta, chunk_size => 4096));
send_bytes($p, rtmp_chunk(3, 20, 0, amf_cmd('anything', 9, amf_null()), chunk_size => 4096));
ok(read_until($p, qr/_result\x00\Q${\ pack('d>', 9)}\E/, 5), 'publisher still served');
my $hwm = main::worker_hwm();
Test::More::note("AMF3 doubling in metadata: worker peak memory $hwm0 -> $hwm kB, resident now "
     . worker_rss() . ' kB');
cmp_ok($hwm - $hwm0, '<', 32 * 1024, 'AMF3 doubling in metadata: worker peak memory grew by < 32 MB');
close $p;
# then in connect, to be refused: its command object is an AMF3 object { app: "live", x: <bomb> },
# entry 0 of the object table, the bomb's array entry 1, its item 0 entry 2
my %bomb = (
    # 18 items, each [ref, ref] to the one before: 120 bytes that decode to 2^18 values
    doubling => main::amf3_ref_chain(18, 2, 2),
    # 1000 items, each [ref] to the one before: nested 1000 deep, past the depth limit of 64
    nesting  => main::amf3_ref_chain(1000, 1, 2),
);
for my $kind (sort keys %bomb) {
    my $s = main::handshaken($TEST_NGINX_RTMP_PORT);
    send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', 65536)));
    ok(main::reset_hwm(), 'worker peak memory reset');
    my $hwm0 = main::worker_hwm();
    my $obj = "\x0a\x0b\x01" . "\x07app\x06\x09live" . "\x03x" . $bomb{$kind} . "\x01";
    my $t0 = Time::HiRes::time();
    send_bytes($s, rtmp_chunk(3, 17, 0, "\x00" . amf_str('connect') . amf_num(1) . "\x11" . $obj,
                              chunk_size => 65536));
    my $got;
    read_until($s, qr/NetConnection\.Connect\.Success/, 3, $got);
    my $took = Time::HiRes::time() - $t0;
    my $hwm = main::worker_hwm();
    Test::More::note(sprintf "AMF3 %s in connect (%d bytes): answered in %.2f s, worker peak memory %d -> %d kB%s",
         $kind, length $bomb{$kind}, $took, $hwm0, $hwm,
         ($got // '') =~ /NetConnection\.Connect\.Success/ ? ', connect accepted' : '');
    cmp_ok($hwm - $hwm0, '<', 32 * 1024, "AMF3 $kind in connect: worker peak memory grew by < 32 MB");
    unlike($got // '', qr/NetConnection\.Connect\.Success/, "AMF3 $kind in connect: refused");
    ok(is_closed($s, 3), "AMF3 $kind in connect: closed");
    cmp_ok($took, '<', 1, "AMF3 $kind in connect: at once");
}
main::guard_check($g);
main::lines_are(qr/rtmp: closing: undecodable command on stream 0: AMF3: /, 2, 'AMF3 refused (2 clients)');
--- error_log
/\[info\] .*rtmp: closing: undecodable command on stream 0: AMF3: too many elements/
--- no_error_log
[alert]
[emerg]
exited on signal
