# HTTP-FLV and WebSocket-FLV players (`flv_live on;` in an http location): both URL styles, the
# RTMP hook chain (access, notify) with the HTTP client's address, GOP-cache start, header flags,
# the stream's end, nginx's output filters (add_header, HTTP/2 over TLS) and players that leave.
# Players are our client (`rtmp flv-play --json`), ffprobe, curl, and a raw socket client below
# for what those do not show (tag order and arrival times, the chunked terminator, HTTP/1.0,
# other methods, a chosen source address).
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::HttpRecorder;
use IO::Select;
use IO::Socket::INET;

# HTTP/2 over TLS needs nginx's ssl and http_v2 modules and a certificate before nginx starts:
# a self-signed one is made here, once per run, and the TLS block's http_config names it.
our $TLS_DIR;
my $tls_owner = $$;
{
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $v = `$nginx -V 2>&1`;
    if ($v =~ /--with-http_ssl_module/ && $v =~ /--with-http_v2_module/) {
        my $dir = repo_root() . "/target/t/http-flv-tls-$$";
        File::Path::make_path($dir);
        my $rc = system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
                        . " -subj /CN=localhost -keyout '$dir/key.pem' -out '$dir/cert.pem' 2>/dev/null");
        $TLS_DIR = $dir if $rc == 0 && -s "$dir/cert.pem";
    }
}
END { File::Path::remove_tree($TLS_DIR) if $TLS_DIR && $$ == $tls_owner }

# The TLS block's http server, or nothing when nginx cannot do it (the run code then skips).
sub tls_http_config {
    return "# no TLS: nginx lacks ssl or http_v2, or openssl failed\n" unless $TLS_DIR;
    return <<"EOF";
server {
    listen 127.0.0.1:\$TEST_NGINX_HTTP_PORT ssl http2;
    ssl_certificate $TLS_DIR/cert.pem;
    ssl_certificate_key $TLS_DIR/key.pem;
    location /flv { flv_live on; }
}
EOF
}

# A track-only copy of the test media ('audio' or 'video'), made by scripts/media.
sub track_only { media("test-$_[0]-only.flv") }

# `rtmp flv-play URL --duration SECS --json`: its JSON report as a hashref, with `exit` (0 ok,
# 2 non-2xx) and `status` also when no JSON came.
sub flv_play {
    my ($url, $secs, @headers) = @_;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(
        [rtmp_cli(), 'flv-play', $url, '--duration', $secs, '--json', map { ('--header', $_) } @headers],
        timeout => $secs + 15);
    my ($json) = $out =~ /^(\{.*\})\s*$/m;
    my $r = ($json && eval { JSON::PP::decode_json($json) }) || {};
    $r->{status} //= $out =~ /^status (\d+)/m ? $1 : 0;
    @$r{qw(exit stderr stdout)} = ($code, $err, $out);
    $r->{ended} //= '';
    return $r;
}

# Repeats a short flv-play until the stream delivers what $want (a sub of the report) asks, so
# that a test starts once the publisher's tracks reached the server; returns the last report.
sub wait_flv {
    my ($url, $want, $secs) = @_;
    my $r;
    wait_until(sub { $r = flv_play($url, 1); $want->($r) }, $secs // 15, 0.2);
    return $r;
}

# A raw HTTP/1.x client. flv_get($path_and_query, %o) with o: port (default the block's HTTP
# port), method, proto ('HTTP/1.1'), from (source address), headers => ['Name: value', ...],
# secs (read at most this long, default 3), until => sub { $tags } (stop once true).
# Returns { status, headers => {lc name => value}, chunked, flags (FLV header byte),
# tags => [[type, ts, payload, ms since the request]], end => 'terminator' (chunked end seen),
# 'eof', 'duration', 'until' or 'refused' (non-2xx head), ms_head, error }.
sub flv_get {
    my ($path, %o) = @_;
    my $t0 = Time::HiRes::time();
    my $ms = sub { (Time::HiRes::time() - $t0) * 1000 };
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port} // $ENV{TEST_NGINX_HTTP_PORT},
                                  Proto => 'tcp', Timeout => 5, ($o{from} ? (LocalAddr => $o{from}) : ()))
        or return { error => "connect: $!", tags => [], end => 'error' };
    binmode $s;
    my $req = sprintf("%s %s %s\r\nHost: 127.0.0.1\r\n%s\r\n", $o{method} // 'GET', $path,
                      $o{proto} // 'HTTP/1.1', join '', map { "$_\r\n" } @{ $o{headers} || [] });
    send_bytes($s, $req) or return { error => "send: $!", tags => [], end => 'error' };
    my %r = (tags => [], headers => {});
    my ($in, $body, $pos, $head_done, $chunk_left) = ('', '', 0, 0, undef);
    my $sel = IO::Select->new($s);
    my $deadline = $t0 + ($o{secs} // 3);
    my $end;
    while (!$end) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) { $end = 'duration'; last }
        next unless $sel->can_read($left);
        my $n = sysread($s, $in, 65536, length $in);
        unless ($n) { $end = 'eof'; last }
        unless ($head_done) {
            my $at = index($in, "\r\n\r\n");
            next if $at < 0;
            my ($line, @h) = split /\r\n/, substr($in, 0, $at);
            $in = substr($in, $at + 4);
            $head_done = 1;
            $r{ms_head} = $ms->();
            ($r{status}) = $line =~ m{^HTTP/\d\.\d (\d{3})};
            for (@h) { $r{headers}{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
            $r{chunked} = ($r{headers}{'transfer-encoding'} // '') =~ /chunked/i ? 1 : 0;
            if (($r{status} // 0) !~ /^(?:2\d\d|101)$/) { $end = 'refused'; last }
        }
        # De-chunk what came.
        if ($r{chunked}) {
            while (1) {
                if (!defined $chunk_left) {
                    my $nl = index($in, "\r\n");
                    last if $nl < 0;
                    my $size = hex(substr($in, 0, $nl) =~ s/;.*//r);
                    if ($size == 0) {
                        $end = 'terminator' if substr($in, $nl + 2, 2) eq "\r\n";
                        last;
                    }
                    $in = substr($in, $nl + 2);
                    $chunk_left = $size;
                }
                last if length($in) < $chunk_left + 2;
                $body .= substr($in, 0, $chunk_left);
                $in = substr($in, $chunk_left + 2);
                undef $chunk_left;
            }
        } else {
            $body .= $in;
            $in = '';
        }
        # Parse the FLV tags that are complete.
        if (!defined $r{flags} && length($body) >= 13) {
            $r{flv_magic} = substr($body, 0, 3);
            $r{flags} = ord substr($body, 4, 1);
            $pos = 13;
        }
        while (defined $r{flags} && $pos + 11 <= length $body) {
            my ($type, $sh, $sl, $th, $tl, $tx) = unpack('C C n C n C', substr($body, $pos, 8));
            my $size = ($sh << 16) | $sl;
            last if $pos + 11 + $size + 4 > length $body;
            push @{ $r{tags} }, [$type & 0x1f, ($tx << 24) | ($th << 16) | $tl, substr($body, $pos + 11, $size), $ms->()];
            $pos += 11 + $size + 4;
        }
        $end = 'until' if !$end && $o{until} && $o{until}->($r{tags});
    }
    close $s;
    $r{end} = $end;
    $r{bytes} = length $body;
    return \%r;
}

# flv-play's FLV header flags as text ("audio video", "audio", "video", "none", "no header").
sub flags_of {
    my $h = $_[0]{flv_header} or return 'no header';
    return join(' ', grep { $h->{$_} } qw(audio video)) || 'none';
}

# Tag kinds of flv_get's tags.
sub is_video { $_[0][0] == 9 }
sub is_audio { $_[0][0] == 8 }
sub avc_seq_header { is_video($_[0]) && substr($_[0][2], 0, 2) eq "\x17\x00" }
sub avc_keyframe { is_video($_[0]) && substr($_[0][2], 0, 2) eq "\x17\x01" }
sub aac_seq_header { is_audio($_[0]) && (ord(substr($_[0][2], 0, 1)) >> 4) == 10 && substr($_[0][2], 1, 1) eq "\x00" }

# The next WebSocket frame from the server (unmasked, FIN assumed): [opcode, payload], or undef
# after $secs seconds. $buf holds the bytes read past the previous frame.
sub ws_frame {
    my ($s, $buf, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        if (length($$buf) >= 2) {
            my ($b0, $b1) = unpack('CC', $$buf);
            my ($hlen, $len) = (2, $b1 & 0x7f);
            ($hlen, $len) = (4, unpack('n', substr($$buf, 2, 2))) if $len == 126 && length($$buf) >= 4;
            ($hlen, $len) = (10, unpack('Q>', substr($$buf, 2, 8))) if $len == 127 && length($$buf) >= 10;
            if ($len < 126 || $hlen > 2) {
                if (length($$buf) >= $hlen + $len) {
                    my $f = [$b0 & 0x0f, substr($$buf, $hlen, $len)];
                    $$buf = substr($$buf, $hlen + $len);
                    return $f;
                }
            }
        }
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        sysread($s, $$buf, 65536, length $$buf) or return undef;
    }
}

# A masked client frame (FIN set) with a short payload.
sub ws_client_frame {
    my ($op, $payload) = @_;
    my $mask = pack('N', int rand 2**32);
    my $masked = $payload ^ substr($mask x (1 + length($payload) / 4), 0, length $payload);
    return chr(0x80 | $op) . chr(0x80 | length $payload) . $mask . $masked;
}

# Lines of the error log showing a crashed or killed worker.
sub crash_lines { log_lines(qr/signal|exited on/) }

run_tests();

__DATA__

=== TEST 1: both URL styles play: 200, video/x-flv, no-cache, chunked, both tracks; ffprobe sees h264 640x360 + aac; port= picks the rtmp server
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
server {
    listen $TEST_NGINX_RTMP_PORT2;
    application other { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /live { flv_live on; }
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", loop => 1);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $h = "http://127.0.0.1:$TEST_NGINX_HTTP_PORT";
my %urls = (
    query => "$h/live?port=$TEST_NGINX_RTMP_PORT&app=live&stream=cam",
    'query without port' => "$h/live?app=live&stream=cam",
    path => "$h/flv/live/cam.flv",
);
main::wait_flv($urls{path}, sub { $_[0]{video} && $_[0]{audio} });
for my $style (sort keys %urls) {
    my $r = main::flv_play($urls{$style}, 3);
    is($r->{status}, 200, "$style: 200") or diag($r->{stdout} . $r->{stderr});
    is($r->{exit}, 0, "$style: flv-play is content");
    is($r->{headers}{'content-type'}, 'video/x-flv', "$style: Content-Type");
    like($r->{headers}{'cache-control'} // '', qr/\bno-cache\b/, "$style: Cache-Control");
    ok($r->{chunked}, "$style: chunked on HTTP/1.1");
    is(main::flags_of($r), 'audio video', "$style: FLV header flags audio and video");
    # 3 s of 25 fps (a GOP cache burst may add up to 2 s).
    cmp_ok($r->{video}, '>=', 50, "$style: video tags");
    cmp_ok($r->{audio}, '>=', 50, "$style: audio tags");
    is($r->{ended}, 'duration', "$style: still streaming after 3 s");
}
for my $style ('query', 'path') {
    my $p = ffprobe_play($urls{$style}, 10);
    is($p->{video}, 'h264', "ffprobe $style: video codec") or diag($p->{stderr});
    is($p->{width}, 640, "ffprobe $style: width");
    is($p->{height}, 360, "ffprobe $style: height");
    is($p->{audio}, 'aac', "ffprobe $style: audio codec");
}
# HTTP/1.0 has no chunked encoding: the FLV bytes come as they are.
my $g = main::flv_get('/flv/live/cam.flv', proto => 'HTTP/1.0', secs => 2);
is($g->{status}, 200, 'HTTP/1.0: 200');
ok(!$g->{chunked}, 'HTTP/1.0: not chunked');
is($g->{flv_magic}, 'FLV', 'HTTP/1.0: the body starts with the FLV header');
cmp_ok(scalar(grep { main::is_video($_) } @{ $g->{tags} }), '>=', 20, 'HTTP/1.0: video tags parse');
# port= names the rtmp server whose applications are searched; without it, the first server.
my $pub2 = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/other/cam2", loop => 1);
ok(wait_published('cam2'), 'FFmpeg publishes other/cam2 on the second server') or diag(publisher_log($pub2));
my $other = "$h/live?port=$TEST_NGINX_RTMP_PORT2&app=other&stream=cam2";
my $r = main::wait_flv($other, sub { $_[0]{video} });
is($r->{status}, 200, 'port= of the second server: 200');
cmp_ok($r->{video}, '>', 0, 'port= of the second server: video');
is(main::flv_play("$h/live?port=$TEST_NGINX_RTMP_PORT&app=other&stream=cam2", 2)->{status}, 404,
   'port= of the first server: its applications only (404)');
is(main::flv_play("$h/flv/other/cam2.flv", 2)->{status}, 404, 'no port=: the first server (404)');
is(wait_publisher($_, 0), undef, 'publisher still running') for $pub, $pub2;
--- error_log
/http-flv: http play app="live" name="cam"/



=== TEST 2: WebSocket-FLV: 101 and the FLV stream in binary frames, both URL styles
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /live { flv_live on; }
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", loop => 1);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $w = "ws://127.0.0.1:$TEST_NGINX_HTTP_PORT";
main::wait_flv("$w/flv/live/cam.flv", sub { $_[0]{video} && $_[0]{audio} });
for my $url ("$w/live?port=$TEST_NGINX_RTMP_PORT&app=live&stream=cam", "$w/flv/live/cam.flv") {
    my $r = main::flv_play($url, 3);
    is($r->{status}, 101, "$url: 101") or diag($r->{stdout} . $r->{stderr});
    is($r->{exit}, 0, "$url: flv-play is content (Sec-WebSocket-Accept checked)");
    is(lc($r->{headers}{upgrade} // ''), 'websocket', "$url: Upgrade: websocket");
    is(main::flags_of($r), 'audio video', "$url: FLV header flags audio and video");
    ok($r->{first_video_is_seq_header}, "$url: the first video tag is the AVC sequence header");
    cmp_ok($r->{video}, '>=', 50, "$url: video tags");
    cmp_ok($r->{audio}, '>=', 50, "$url: audio tags");
    is($r->{ended}, 'duration', "$url: still streaming after 3 s");
}
# A raw WebSocket client: the accept key of RFC 6455's example, a ping answered by a pong with
# its payload, a close answered by a close frame and the end of the connection.
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $TEST_NGINX_HTTP_PORT, Proto => 'tcp', Timeout => 5);
send_bytes($s, "GET /flv/live/cam.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
my $buf = read_until($s, qr/\r\n\r\n/, 5) // '';
my ($head) = $buf =~ /^(.*?\r\n\r\n)/s;
$buf = substr($buf, length($head // ''));
like($head // '', qr{^HTTP/1\.1 101 }, 'raw: 101');
like($head // '', qr/^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r$/mi, 'raw: the RFC 6455 accept key');
my $f = main::ws_frame($s, \$buf, 5);
is($f && $f->[0], 2, 'raw: binary frames');
is($f && substr($f->[1], 0, 3), 'FLV', 'the first one starts with the FLV header');
send_bytes($s, main::ws_client_frame(0x9, 'hello?'));
my @got;
while (my $fr = main::ws_frame($s, \$buf, 5)) { push @got, $fr; last if $fr->[0] == 0xA }
ok(@got && $got[-1][0] == 0xA, 'a ping is answered by a pong');
is(@got && $got[-1][1], 'hello?', 'with the ping\'s payload');
send_bytes($s, main::ws_client_frame(0x8, pack('n', 1000)));
@got = ();
while (my $fr = main::ws_frame($s, \$buf, 5)) { push @got, $fr; last if $fr->[0] == 0x8 }
ok(@got && $got[-1][0] == 0x8, 'a close is answered by a close frame');
ok(is_closed($s, 5), 'and the server closes the connection');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));
--- error_log
/http-flv: ws play app="live" name="cam"/



=== TEST 3: refusals: 404 (no publisher, unknown app, unknown port), 405 (POST, HEAD), 403 (deny play), access by the HTTP client's address
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
    application closed { live on; deny play all; }
    application only2 { live on; allow play 127.0.0.2; deny play all; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $h = "http://127.0.0.1:$TEST_NGINX_HTTP_PORT";
# Nobody publishes live/none: answered at once, not held.
my $g = main::flv_get('/flv/live/none.flv', secs => 5);
is($g->{status}, 404, 'a stream nobody publishes: 404');
cmp_ok($g->{ms_head} // 1e9, '<', 1000, "at once ($g->{ms_head} ms)");
my $r = main::flv_play("$h/flv?port=$TEST_NGINX_RTMP_PORT&app=live&stream=none", 5);
is($r->{status}, 404, 'the same, query style');
is($r->{exit}, 2, 'flv-play reports a non-2xx status');
is(main::flv_play("$h/flv/nope/cam.flv", 5)->{status}, 404, 'unknown application: 404');
is(main::flv_play("$h/flv?port=1&app=live&stream=cam", 5)->{status}, 404, 'unknown rtmp port: 404');
my @pubs = map { publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/$_/cam", loop => 1) } qw(live closed only2);
ok(wait_published('cam', 3), 'FFmpeg publishes live/cam, closed/cam and only2/cam') or diag(publisher_log($pubs[0]));
main::wait_flv("$h/flv/live/cam.flv", sub { $_[0]{video} });
$g = main::flv_get('/flv/live/cam.flv', method => 'POST', headers => ['Content-Length: 3'], secs => 5);
is($g->{status}, 405, 'POST: 405');
$g = main::flv_get('/flv/live/cam.flv', method => 'HEAD', secs => 5);
is($g->{status}, 405, 'HEAD: 405');
is(main::flv_play("$h/flv/closed/cam.flv", 5)->{status}, 403, 'deny play all: 403');
is(main::flv_play("$h/flv?port=$TEST_NGINX_RTMP_PORT&app=closed&stream=cam", 5)->{status}, 403, 'deny play all, query style: 403');
$g = main::flv_get('/flv/only2/cam.flv', secs => 5);
is($g->{status}, 403, 'allow play 127.0.0.2 refuses 127.0.0.1');
$g = main::flv_get('/flv/only2/cam.flv', from => '127.0.0.2', secs => 2);
is($g->{status}, 200, 'and lets 127.0.0.2 play');
cmp_ok(scalar(grep { main::is_video($_) } @{ $g->{tags} }), '>', 0, 'which gets video');
is(main::flv_play("$h/flv/live/cam.flv", 2)->{status}, 200, 'the open application still plays');
is(wait_publisher($_, 0), undef, 'publisher still running') for @pubs;
--- error_log
/access: play "cam" denied to 127\.0\.0\.1 by "deny play all"/



=== TEST 4: notify: on_play gets the HTTP client's address and query arguments; a refusal is 403
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    # The recorder listens on $TEST_NGINX_RTMP_PORT2 (nginx does not), the HTTP side on HTTP_PORT.
    application live {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/ok;
        on_play_done http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/ok;
    }
    application locked {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/deny;
    }
    application view {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/redirect/real;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $rec = Test::Nginx::HttpRecorder->new("$TEST_NGINX_PREFIX/calls.jsonl", $TEST_NGINX_RTMP_PORT2);
my $calls = sub { my ($c, $n) = @_; my @c; wait_until(sub { @c = $rec->calls($c); @c >= $n }, 10, 0.1); @c };
my @pubs = map { publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/$_", loop => 1) } qw(live/cam locked/cam view/real);
ok(wait_published('cam', 2), 'FFmpeg publishes live/cam and locked/cam') or diag(publisher_log($pubs[0]));
ok(wait_published('real'), 'FFmpeg publishes view/real') or diag(publisher_log($pubs[2]));
# From 127.0.0.2, so that the address can only be the HTTP client's (FFmpeg is on 127.0.0.1).
my $g = main::flv_get('/flv/live/cam.flv?token=s3cr%20t&x=1', from => '127.0.0.2', secs => 2);
is($g->{status}, 200, 'path style with arguments: 200');
cmp_ok(scalar @{ $g->{tags} }, '>', 0, 'tags came');
my ($p) = $calls->('play', 1);
ok($p, 'on_play called') or diag(explain([$rec->requests]));
my %f = %{ $p->{fields} // {} };
is($f{addr}, '127.0.0.2', 'on_play addr is the HTTP client\'s');
is($f{app}, 'live', 'on_play app');
is($f{name}, 'cam', 'on_play name');
is($f{token}, 's3cr t', 'on_play carries the query arguments');
is($f{x}, '1', 'all of them');
like($f{tcurl} // '', qr{^http://[^/]+/live$}, 'on_play tcurl names the HTTP request');
like($f{clientid} // '', qr/^\d+$/, 'on_play clientid');
my ($d) = $calls->('play_done', 1);
ok($d, 'on_play_done called once the HTTP client left');
is($d->{fields}{addr}, '127.0.0.2', 'on_play_done addr') if $d;
$g = main::flv_get("/flv?port=$TEST_NGINX_RTMP_PORT&app=live&stream=cam&token=q", from => '127.0.0.2', secs => 1);
is($g->{status}, 200, 'query style: 200');
my @p = $calls->('play', 2);
is($p[1]{fields}{token}, 'q', 'query style: on_play carries the arguments') if @p >= 2;
is($p[1]{fields}{name}, 'cam', 'query style: name') if @p >= 2;
$g = main::flv_get('/flv/locked/cam.flv?token=bad', secs => 5);
is($g->{status}, 403, 'on_play answered 403: the request gets 403');
my @l = grep { $_->{fields}{app} eq 'locked' } $calls->('play', 3);
is(scalar @l, 1, 'after asking the notify server');
# An on_play redirect (302 Location: real) plays the renamed stream.
$g = main::flv_get('/flv/view/whatever.flv', secs => 2);
is($g->{status}, 200, 'on_play redirect: 200');
cmp_ok(scalar(grep { main::is_video($_) } @{ $g->{tags} }), '>', 10, 'on_play redirect: the renamed stream\'s video');
is(wait_publisher($_, 0), undef, 'publisher still running') for @pubs;
--- error_log
/notify: on_play http:\/\/127\.0\.0\.1:\d+\/deny answered 403/



=== TEST 5: GOP cache: a player joining mid-GOP starts at once at the cached keyframe, timestamps from 0
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; gop_cache on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
# irregular.flv has keyframes at 0, 1.2, 4.6, 5.4 and 9.8 s: a player joining about 2 s in waits
# some 2.5 s for the next keyframe unless it starts from the cached one.
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/gop", file => media('irregular.flv'), timeout => 30);
ok(wait_published('gop'), 'FFmpeg publishes') or diag(publisher_log($pub));
Time::HiRes::sleep(2.0);
my $g = main::flv_get('/flv/live/gop.flv', secs => 5, until => sub { grep { main::avc_keyframe($_) } @{ $_[0] } });
is($g->{status}, 200, 'the player gets 200');
my @t = @{ $g->{tags} };
my @v = grep { main::is_video($_) } @t;
my @a = grep { main::is_audio($_) } @t;
my $key = (grep { main::avc_keyframe($_) } @v)[0];
ok($key, 'a keyframe came') or diag(scalar(@t) . " tags, end $g->{end}");
cmp_ok($t[0][3], '<', 500, sprintf('the first tag came at once (%.0f ms)', $t[0][3])) if @t;
cmp_ok($key->[3], '<', 1000, sprintf('so did the keyframe (%.0f ms): no wait for the next GOP', $key->[3])) if $key;
ok(@v && main::avc_seq_header($v[0]), 'the first video tag is the AVC sequence header');
ok(@v > 1 && main::avc_keyframe($v[1]), 'the second is a keyframe');
ok(!@a || main::aac_seq_header($a[0]), 'the first audio tag (if any yet) is the AAC sequence header');
cmp_ok($v[0][1], '<', 100, "the first video timestamp is near 0 ($v[0][1] ms)") if @v;
cmp_ok($t[0][1], '<', 100, "so is the first tag's ($t[0][1] ms)") if @t;
cmp_ok($key->[1], '<', 100, "and the keyframe's ($key->[1] ms)") if $key;
# The same through our client: media keeps flowing after the burst.
my $r = main::flv_play("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/gop.flv", 1.5);
ok($r->{first_video_is_seq_header}, 'flv-play: first video is the sequence header');
cmp_ok($r->{first_video_keyframe_ts} // 1e9, '<', 100, 'flv-play: the first keyframe at ts < 100');
cmp_ok($r->{ms_to_first_tag} // 1e9, '<', 500, "flv-play: first tag after $r->{ms_to_first_tag} ms");
cmp_ok($r->{last_ts}, '>', 1000, "flv-play: timestamps advance (last $r->{last_ts} ms)");
stop($pub);



=== TEST 6: FLV header flags follow the tracks: audio-only 0x04, video-only 0x01
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $ap = publish("$base/aonly", file => main::track_only('audio'), loop => 1);
my $vp = publish("$base/vonly", file => main::track_only('video'), loop => 1);
ok(wait_published('aonly') && wait_published('vonly'), 'FFmpeg publishes both') or diag(publisher_log($ap) . publisher_log($vp));
my $h = "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live";
main::wait_flv("$h/aonly.flv", sub { $_[0]{audio} });
main::wait_flv("$h/vonly.flv", sub { $_[0]{video} });
my $a = main::flv_play("$h/aonly.flv", 2);
is(main::flags_of($a), 'audio', 'audio-only: audio flag only');
cmp_ok($a->{audio}, '>', 20, 'audio-only: audio tags');
is($a->{video}, 0, 'audio-only: no video tags');
my $g = main::flv_get('/flv/live/aonly.flv', secs => 1);
is($g->{flags}, 0x04, 'audio-only: header byte 0x04');
my $v = main::flv_play("$h/vonly.flv", 2);
is(main::flags_of($v), 'video', 'video-only: video flag only');
cmp_ok($v->{video}, '>', 20, 'video-only: video tags');
is($v->{audio}, 0, 'video-only: no audio tags');
$g = main::flv_get('/flv/live/vonly.flv', secs => 1);
is($g->{flags}, 0x01, 'video-only: header byte 0x01');
my $w = main::flv_play("ws://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/aonly.flv", 1);
is(main::flags_of($w), 'audio', 'WebSocket audio-only: audio flag only');



=== TEST 7: the publisher stops: HTTP responses end with the chunked terminator, WebSocket with a close frame
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/end", loop => 1);
ok(wait_published('end'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $h = "127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/end.flv";
main::wait_flv("http://$h", sub { $_[0]{video} });
my $n0 = () = log_lines(qr/rtmp: live: play "end"/);
my @bg = (
    in_background(sub { my $r = main::flv_play("http://$h", 30); ($r, Time::HiRes::time()) }),
    in_background(sub { my $r = main::flv_play("ws://$h", 30); ($r, Time::HiRes::time()) }),
    in_background(sub { my $g = main::flv_get('/flv/live/end.flv', secs => 30);
                        delete $_->[2] for @{ $g->{tags} };
                        ($g, Time::HiRes::time()) }),
);
ok(wait_log(qr/rtmp: live: play "end"/, $n0 + 3), 'three players joined');
# Each has had media: the worker sent them at least the GOP cache by now.
Time::HiRes::sleep(0.5);
my $t_stop = Time::HiRes::time();
stop($pub);
ok(wait_unpublished('end'), 'the stream ended');
my ($hr, $ht) = result_of($bg[0], 40);
my ($wr, $wt) = result_of($bg[1], 40);
my ($gr, $gt) = result_of($bg[2], 40);
is($hr->{ended}, 'eof', 'HTTP: flv-play saw the end') or diag(explain($hr));
ok($hr->{chunked}, 'HTTP: chunked');
cmp_ok($hr->{video}, '>', 0, 'HTTP: had video');
cmp_ok($ht - $t_stop, '<', 5, sprintf('HTTP: ended %.1f s after the publisher stopped', $ht - $t_stop));
is($wr->{ended}, 'close-frame', 'WebSocket: a close frame') or diag(explain($wr));
cmp_ok($wr->{video}, '>', 0, 'WebSocket: had video');
cmp_ok($wt - $t_stop, '<', 5, sprintf('WebSocket: ended %.1f s after the publisher stopped', $wt - $t_stop));
is($gr->{end}, 'terminator', 'raw HTTP/1.1: the response ends with the chunked terminator') or diag(explain($gr));
cmp_ok(scalar @{ $gr->{tags} || [] }, '>', 0, 'raw HTTP/1.1: had tags');
cmp_ok($gt - $t_stop, '<', 5, sprintf('raw HTTP/1.1: ended %.1f s after the publisher stopped', $gt - $t_stop));
# curl checks the chunked framing too (exit 18 when the body is cut short).
my $pub2 = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/end", timeout => 30);
ok(wait_published('end', 2), 'a new publish') or diag(publisher_log($pub2));
main::wait_flv("http://$h", sub { $_[0]{video} });
$n0 = () = log_lines(qr/rtmp: live: play "end"/);
my $curl = in_background(sub { Test::Nginx::Rtmp::run_cmd(['curl', '-sS', '-o', '/dev/null', '--max-time', '30', "http://$h"], timeout => 40) });
ok(wait_playing('end', $n0 + 1), 'curl plays');
stop($pub2);
my ($code, undef, $err) = result_of($curl, 40);
is($code, 0, 'curl: the transfer ended cleanly') or diag($err);
is(scalar(main::crash_lines()), 0, 'no worker crashed');



=== TEST 8: CORS: add_header values apply to the FLV response
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv {
        flv_live on;
        add_header Access-Control-Allow-Origin *;
        add_header Access-Control-Allow-Credentials true;
        add_header X-Always yes always;
    }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cors", loop => 1);
ok(wait_published('cors'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $h = "http://127.0.0.1:$TEST_NGINX_HTTP_PORT";
main::wait_flv("$h/flv/live/cors.flv", sub { $_[0]{video} });
my $r = main::flv_play("$h/flv/live/cors.flv", 1, 'Origin: http://example.com');
is($r->{status}, 200, 'the player gets 200');
is($r->{headers}{'access-control-allow-origin'}, '*', 'Access-Control-Allow-Origin');
is($r->{headers}{'access-control-allow-credentials'}, 'true', 'Access-Control-Allow-Credentials');
is($r->{headers}{'content-type'}, 'video/x-flv', 'Content-Type kept');
cmp_ok($r->{video}, '>', 0, 'video tags');
$r = main::flv_play("ws://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/cors.flv", 1);
is($r->{status}, 101, 'WebSocket: 101');
is($r->{headers}{'x-always'}, 'yes', 'WebSocket: add_header ... always applies to the 101');
my $g = main::flv_get('/flv/live/none.flv', secs => 5);
is($g->{status}, 404, 'no publisher: 404');
is($g->{headers}{'x-always'}, 'yes', 'add_header ... always applies to the 404');
ok(!exists $g->{headers}{'access-control-allow-origin'}, 'add_header without always does not');



=== TEST 9: HTTP/2 over TLS (self-signed certificate, curl --http2 -k): 200, FLV bytes, a clean end
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config eval
main::tls_http_config()
--- run
SKIP: {
    skip('nginx lacks ssl or http_v2, or openssl could not make a certificate', 13) unless $main::TLS_DIR;
    my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/h2", loop => 1);
    ok(wait_published('h2'), 'FFmpeg publishes') or diag(publisher_log($pub));
    my $url = "https://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/h2.flv";
    my $file = "$TEST_NGINX_PREFIX/h2.flv";
    my @curl = ('curl', '-sS', '-k', '--http2', '-o', $file, '-D', "$file.head",
                '-w', '%{http_version} %{http_code} %{content_type}');
    my ($code, $out, $err);
    wait_until(sub {
        ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd([@curl, '--max-time', '2', $url], timeout => 10);
        $out =~ / 200 /;
    }, 15, 0.2);
    is($code, 28, 'curl reads until its --max-time (the stream goes on)') or diag($err);
    like($out, qr/^2 /, "HTTP/2 ($out)");
    like($out, qr/ 200 video\/x-flv$/, '200 video/x-flv');
    my $data = Test::Nginx::Rtmp::slurp($file);
    is(substr($data, 0, 3), 'FLV', 'the body starts with "FLV"');
    is(ord(substr($data, 4, 1)), 0x05, 'header flags audio and video');
    my @tags = flv_tags($file);
    cmp_ok(scalar(grep { $_->[0] == 9 } @tags), '>=', 25, 'video tags');
    cmp_ok(scalar(grep { $_->[0] == 8 } @tags), '>=', 25, 'audio tags');
    unlike(Test::Nginx::Rtmp::slurp("$file.head"), qr/transfer-encoding/i, 'no chunked framing inside HTTP/2');
    # The stream's end closes the HTTP/2 stream cleanly.
    my $n0 = () = log_lines(qr/rtmp: live: play "h2"/);
    my $bg = in_background(sub { Test::Nginx::Rtmp::run_cmd([@curl, '--max-time', '30', $url], timeout => 40) });
    ok(wait_playing('h2', $n0 + 1), 'a second curl plays');
    Time::HiRes::sleep(0.3);
    stop($pub);
    my ($c2, $o2, $e2) = result_of($bg, 40);
    is($c2, 0, 'the publisher stopped: curl ends without error') or diag($e2);
    like($o2 // '', qr/^2 200 /, 'it was HTTP/2 too');
    is(scalar(main::crash_lines()), 0, 'no worker crashed');
}



=== TEST 10: two players at once both get data; players that leave early disturb neither the other nor the publisher
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/two", loop => 1, timeout => 60);
ok(wait_published('two'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $h = "127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/two.flv";
main::wait_flv("http://$h", sub { $_[0]{video} });
my $worker = worker_pid();
my $n0 = () = log_lines(qr/rtmp: live: play "two"/);
my @long = map { my $u = $_; in_background(sub { main::flv_play($u, 6) }) } "http://$h", "ws://$h";
# An HTTP/1.0 player (no chunked framing) beside the chunked one on the same stream.
my $old = in_background(sub {
    my $g = main::flv_get('/flv/live/two.flv', proto => 'HTTP/1.0', secs => 6);
    return ($g->{status}, $g->{chunked}, $g->{flv_magic}, $g->{end},
            scalar(grep { main::is_video($_) } @{ $g->{tags} }), scalar(grep { main::is_audio($_) } @{ $g->{tags} }));
});
ok(wait_log(qr/rtmp: live: play "two"/, $n0 + 3), 'the three long players joined');
# Players that leave: after some media (HTTP and WebSocket), and before reading anything.
for my $i (1 .. 3) {
    my $g = main::flv_get('/flv/live/two.flv', secs => 0.5);
    is($g->{status}, 200, "short HTTP player $i: 200");
    my $w = main::flv_play("ws://$h", 0.5);
    is($w->{status}, 101, "short WebSocket player $i: 101");
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $TEST_NGINX_HTTP_PORT, Proto => 'tcp', Timeout => 5);
    send_bytes($s, "GET /flv/live/two.flv HTTP/1.1\r\nHost: x\r\n\r\n") if $s;
    close $s if $s;
}
for my $i (0 .. 1) {
    my ($r) = result_of($long[$i], 30);
    my $what = $i ? 'WebSocket player' : 'HTTP player';
    is($r->{ended}, 'duration', "$what: played the whole 6 s") or diag(explain($r));
    cmp_ok($r->{video}, '>=', 125, "$what: video tags (25 fps)");
    cmp_ok($r->{audio}, '>=', 200, "$what: audio tags");
}
my ($st, $ch, $magic, $end, $v, $a) = result_of($old, 30);
is($st, 200, 'HTTP/1.0 player: 200');
ok(!$ch, 'HTTP/1.0 player: not chunked');
is($magic, 'FLV', 'HTTP/1.0 player: FLV header');
is($end, 'duration', 'HTTP/1.0 player: played the whole 6 s');
cmp_ok($v // 0, '>=', 125, 'HTTP/1.0 player: video tags parse (no chunk framing mixed in)');
cmp_ok($a // 0, '>=', 200, 'HTTP/1.0 player: audio tags parse');
is(wait_publisher($pub, 0), undef, 'the publisher still runs') or diag(publisher_log($pub));
my $r = main::flv_play("http://$h", 1);
cmp_ok($r->{video}, '>', 0, 'a new player still gets video');
is(worker_pid(), $worker, 'the same worker');
is(scalar(main::crash_lines()), 0, 'no worker crashed') or diag(join "\n", main::crash_lines());



=== TEST 11: Enhanced RTMP HEVC reaches HTTP-FLV players as Enhanced FLV tags; legacy HEVC (codec id 12) as received
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $ep = rtmp_publish("$base/hvc1", hevc_flv('enhanced'), loop => 1, args => ['--fourcc', 'hvc1']);
my $lp = rtmp_publish("$base/hevc12", hevc_flv('legacy'), loop => 1);
ok(wait_published('hvc1') && wait_published('hevc12'), 'both HEVC streams are published')
    or diag(publisher_log($ep) . publisher_log($lp));
main::wait_flv("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/hvc1.flv", sub { $_[0]{video} });
my $g = main::flv_get('/flv/live/hvc1.flv', secs => 3, until => sub { (grep { main::is_video($_) } @{ $_[0] }) >= 10 });
my @v = grep { main::is_video($_) } @{ $g->{tags} };
cmp_ok(scalar @v, '>=', 10, 'Enhanced HEVC: video tags arrive');
my $first = $v[0] ? $v[0][2] : '';
ok(length($first) >= 5 && (ord($first) & 0x80), 'Enhanced HEVC: the first video tag has an ExVideoTagHeader');
is(substr($first, 1, 4), 'hvc1', 'Enhanced HEVC: FourCC hvc1');
is(ord($first) & 0x0f, 0, 'Enhanced HEVC: the first video tag is the sequence start');
is(scalar(grep { !(ord($_->[2]) & 0x80) } @v), 0, 'Enhanced HEVC: every video tag is Enhanced FLV');
is($g->{flags}, 0x01, 'Enhanced HEVC: FLV header says video only');
main::wait_flv("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/hevc12.flv", sub { $_[0]{video} });
$g = main::flv_get('/flv/live/hevc12.flv', secs => 3, until => sub { (grep { main::is_video($_) } @{ $_[0] }) >= 10 });
@v = grep { main::is_video($_) } @{ $g->{tags} };
cmp_ok(scalar @v, '>=', 10, 'legacy HEVC: video tags arrive');
is(scalar(grep { (ord($_->[2]) & 0x0f) != 12 } @v), 0, 'legacy HEVC: every video tag keeps codec id 12');
is(substr($v[0][2], 1, 1), "\x00", 'legacy HEVC: the first video tag is the sequence header') if @v;



=== TEST 12: a player that stops reading is bounded like a slow RTMP player: its queue drops to the next keyframe, others keep playing
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    out_queue 64;
    application live { live on; }
}
--- http_config
server {
    # Small socket buffers, so that a client that reads nothing fills them in a moment.
    listen $TEST_NGINX_HTTP_PORT sndbuf=8k;
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/slow", loop => 1);
ok(wait_published('slow'), 'FFmpeg publishes') or diag(publisher_log($pub));
main::wait_flv("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/slow.flv", sub { $_[0]{video} });
# A client with a tiny receive buffer that reads nothing: the socket fills, then the queue.
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $TEST_NGINX_HTTP_PORT, Proto => 'tcp')
    or die "connect: $!";
setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 4096);
send_bytes($s, "GET /flv/live/slow.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
ok(wait_log(qr/player queue full \("out_queue"\), dropping to the next keyframe/, 1, 20),
   'the stalled HTTP player hits its out_queue bound and drops to a keyframe');
my $r = main::flv_play("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/slow.flv", 2);
cmp_ok($r->{video}, '>', 20, 'another HTTP player still plays meanwhile');
is(wait_publisher($pub, 0), undef, 'the publisher is still publishing') or diag(publisher_log($pub));
close $s;
is(scalar(main::crash_lines()), 0, 'no worker crashed');
