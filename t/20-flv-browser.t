# HTTP-FLV and WebSocket-FLV in a real browser: headless Chromium (t/browser/flv_play.py, driven
# as t/13's hls_play.py) plays the module's `flv_live` location with mpegts.js (a pinned npm
# release, fetched into target/web/ below) from t/web/flv.html, for 12 s each way, and prints the
# live latency it saw. The page comes from a second origin (127.0.0.2), so the HTTP-FLV fetch is
# cross-origin and needs the location's CORS header. FFmpeg publishes target/media/test.flv
# (640x360 H.264 + AAC, copied, looped) over RTMP.
use lib 't/lib';
use Test::Nginx::Rtmp;
use File::Copy ();

my @missing = grep { !-x $_ } qw(/usr/bin/chromium /usr/bin/chromedriver /usr/bin/python3);
push @missing, 'python3-selenium'
    if -x '/usr/bin/python3' && system('/usr/bin/python3 -c "import selenium" 2>/dev/null') != 0;
if (@missing) {
    Test::More::plan(skip_all => "no @missing (run scripts/setup)");
}

run_tests();

# target/web/mpegts.js: the pinned npm release scripts/setup fetches and checks (as hls.js); undef
# (with a diag) when it is missing.
sub mpegts_js {
    my $js = repo_root() . '/target/web/mpegts.js';
    return $js if -s $js;
    Test::More::diag("mpegts_js: $js is missing: run scripts/setup");
    return undef;
}

# Plays the live FLV $stream_url in headless Chromium from $page_origin/web/flv.html (t/web/* and
# mpegts.js are copied into the block's html/web/, so the block needs `location /web/ { root
# html; }`); returns flv_play.py's JSON report as a hashref, or undef (with a diag).
# %opt: seconds => playback watched (default 12), start_timeout (default 20), screenshot => PNG
# path relative to the repository root.
sub browser_play_flv {
    my ($page_origin, $stream_url, %opt) = @_;
    my $secs = $opt{seconds} // 12;
    my $start = $opt{start_timeout} // 20;
    my $root = repo_root();
    my $js = mpegts_js() or return undef;
    my $web = "$ENV{TEST_NGINX_PREFIX}/html/web";
    File::Path::make_path($web);
    for my $src (glob("$root/t/web/*"), $js) {
        my $dst = "$web/" . File::Basename::basename($src);
        File::Copy::copy($src, $dst) or do { Test::More::diag("browser_play_flv: $dst: $!"); return undef };
    }
    (my $q = $stream_url) =~ s/([^A-Za-z0-9\-._~\/:])/sprintf('%%%02X', ord $1)/ge;
    my @cmd = ('/usr/bin/python3', "$root/t/browser/flv_play.py", '--url', "$page_origin/web/flv.html?src=$q",
               '--seconds', $secs, '--start-timeout', $start);
    push @cmd, '--screenshot', "$root/$opt{screenshot}" if $opt{screenshot};
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(\@cmd, timeout => $secs + $start + 80);
    my ($line) = grep { /^\{/ } reverse split /\n/, $out;
    my $r = defined $line ? eval { JSON::PP::decode_json($line) } : undef;
    if ($code || !$r) {
        Test::More::diag("browser_play_flv: flv_play.py exit code $code"
                         . ($r && $r->{error} ? ": $r->{error}" : '') . "\n$out" . substr($err, -2000));
        return undef;
    }
    Test::More::diag("browser_play_flv: $r->{error}") if $r->{error};
    return $r;
}

__DATA__

=== TEST 1: mpegts.js in headless Chromium plays HTTP-FLV and WebSocket-FLV live, with low latency
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    # The page's origin: another address, so the player's HTTP-FLV fetch is a CORS request.
    listen 127.0.0.2:$TEST_NGINX_HTTP_PORT;
    location /flv/ {
        flv_live on;
        add_header Access-Control-Allow-Origin *;
    }
    # t/web/flv.html and mpegts.js, copied into html/web/ by browser_play_flv().
    location /web/ {
        root html;
    }
}
--- timeout: 200
--- run
my $port = $TEST_NGINX_HTTP_PORT;
my $writer = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 170);
ok(wait_published('test', 1, 15), 'FFmpeg publishes live/test') or diag(publisher_log($writer));

# What the browser's cross-origin fetch needs, seen on the wire first.
my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5);
print $h "GET /flv/live/test.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.2:$port\r\n\r\n"
    if $h;
my $resp = $h ? read_until($h, qr/\r\n\r\n.*FLV\x01/s, 5) // '' : '';
close $h if $h;
my ($head) = split /\r\n\r\n/, $resp;
like($head // '', qr{^HTTP/1\.1 200 .*\r\nContent-Type: video/x-flv\r\n}s, 'HTTP-FLV answers 200 video/x-flv');
like($head // '', qr{\r\nAccess-Control-Allow-Origin: \*(\r\n|$)}, 'add_header reaches the stream response');

my @cases = (
    ['HTTP-FLV', 'http', "http://127.0.0.1:$port/flv/live/test.flv", 'fetch-stream-loader'],
    ['WebSocket-FLV', 'ws', "ws://127.0.0.1:$port/flv/?port=$TEST_NGINX_RTMP_PORT&app=live&stream=test",
     'websocket-loader'],
);
for my $case (@cases) {
    my ($what, $scheme, $url, $loader) = @$case;
    my $r = browser_play_flv("http://127.0.0.2:$port", $url, seconds => 12,
                             screenshot => "target/flv-browser-$scheme.png");
    ok($r, "$what: the browser ran") or next;
    note(explain($r));
    ok(wait_log(qr/http-flv: \Q$scheme\E play app="live" name="test"/, 1, 1),
       "$what: the module saw an $scheme play");
    is($r->{stats}{loaderType}, $loader, "$what: mpegts.js used its $loader");
    ok($r->{started}, "$what: playback started") or diag(explain($r));
    cmp_ok($r->{advanced_s}, '>=', 8, "$what: currentTime advanced at least 8 s in 12 s");
    is($r->{width}, 640, "$what: video width");
    is($r->{height}, 360, "$what: video height");
    is(scalar @{ $r->{fatal_errors} || [] }, 0, "$what: no mpegts.js or media element error")
        or diag(explain($r->{fatal_errors}));
    ok(!$r->{ended}, "$what: the stream did not end");
    my $mi = $r->{media_info} || {};
    ok($mi->{hasVideo} && $mi->{hasAudio}, "$what: the FLV header and tags carry video and audio")
        or diag(explain($mi));
    cmp_ok(($r->{quality} || {})->{total} // 0, '>=', 150, "$what: frames were decoded");
    my $l = $r->{latency} || {};
    diag(sprintf("%s latency: buffer (buffered end - currentTime) median %s s, max %s s; "
                 . "wall-clock estimate median %s s, max %s s; startup %s s, %d chasing seeks, "
                 . "%d stalls, %s/%s frames dropped",
                 $what, map({ $l->{$_} // '?' } qw(buffer_median_s buffer_max_s wall_median_s wall_max_s)),
                 $r->{startup_s} // '?', $r->{seeks} // 0, $r->{waiting} // 0,
                 ($r->{quality} || {})->{dropped} // '?', ($r->{quality} || {})->{total} // '?'));
    # mpegts.js chases latency past 1.5 s back to 0.5 s: a median far above means data came late.
    cmp_ok($l->{buffer_median_s} // 99, '<=', 2, "$what: buffered latency median at most 2 s");
    cmp_ok($l->{wall_median_s} // 99, '<=', 3, "$what: wall-clock latency median at most 3 s");
}
ok(!defined wait_publisher($writer, 0), 'the publisher was still running')
    or diag(publisher_log($writer));
--- no_error_log
[error]
