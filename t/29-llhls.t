# Low-Latency HLS (hls_low_latency on, hls_part; `location /ll/ { rtmp_hls; }`): the playlist's tags
# and RFC 8216bis rules (part durations, INDEPENDENT first parts, parts adding up to their parent),
# parts concatenated = their segment, the init and parts read by our box parser and ffprobe,
# blocking playlist reloads (_HLS_msn/_HLS_part), held preload-hinted parts, delta updates
# (_HLS_skip), EXT-X-PROGRAM-DATE-TIME, the end of a stream and a republish, every worker answering,
# rendition reports of variants, FFmpeg over HTTP, configuration errors, and hls.js in
# lowLatencyMode in headless Chromium (last; skipped without chromium, like t/28-hls-fmp4.t).
# Every HTTP request is a fresh connection.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Mp4 qw(parse_init parse_segment tfdt_problems probe_bytes);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();
use Time::Local ();

# ---------------------------------------------------------------------------------------------
# HTTP, one request per connection: http_start sends, http_finish reads the whole answer.

sub http_start {
    my ($port, $path) = @_;
    my $t0 = Time::HiRes::time();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
        or return { error => "connect: $!", path => $path, t0 => $t0 };
    send_bytes($s, "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        or return { error => "send: $!", path => $path, t0 => $t0 };
    return { sock => $s, t0 => $t0, path => $path };
}

# { status, headers => {lowercase name => value}, body, secs (send to end of answer), error }.
sub http_finish {
    my ($h, $secs) = @_;
    my %r = (status => 0, headers => {}, body => '', path => $h->{path});
    if ($h->{error}) { $r{error} = $h->{error}; return \%r }
    my $sock = $h->{sock};
    my $sel = IO::Select->new($sock);
    my $deadline = $h->{t0} + ($secs // 15);
    my $buf = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) { $r{error} = 'timed out'; last }
        next unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    $r{secs} = Time::HiRes::time() - $h->{t0};
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    $head //= '';
    $r{status} = $1 if $head =~ m{^HTTP/1\.[01] (\d{3})};
    for (split /\r\n/, $head) { $r{headers}{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/ }
    $body //= '';
    if (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/\A\r\n//;
        }
        $body = $out;
    }
    $r{body} = $body;
    return \%r;
}

sub http_get { my ($port, $path, $secs) = @_; return http_finish(http_start($port, $path), $secs) }

# ---------------------------------------------------------------------------------------------
# The LL media playlist

sub attrs {
    my ($s) = @_;
    my %a;
    while ($s =~ /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g) {
        my ($k, $v) = ($1, $2);
        $v =~ s/^"(.*)"$/$1/;
        $a{$k} = $v;
    }
    return \%a;
}

# { text, version, target, seq, part_target, control, skipped, ended, maps => [uri],
#   segs => [{msn, dur, uri, pdt, map, discont, parts => [{dur, uri, ind}]}] (complete segments),
#   open => the open segment's parts (same shape, no uri) or undef, hints => [attrs],
#   reports => [attrs], hint => [msn, part], last => [msn, part] (the newest part listed) }.
sub llp {
    my ($t) = @_;
    my %p = (text => $t // '', segs => [], maps => [], hints => [], reports => []);
    $t //= '';
    $p{version} = $1 if $t =~ /^#EXT-X-VERSION:(\d+)$/m;
    $p{target} = $1 if $t =~ /^#EXT-X-TARGETDURATION:(\d+)$/m;
    $p{seq} = $1 if $t =~ /^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m;
    $p{part_target} = $1 if $t =~ /^#EXT-X-PART-INF:PART-TARGET=([\d.]+)$/m;
    $p{control} = $1 if $t =~ /^#EXT-X-SERVER-CONTROL:(.*)$/m;
    $p{skipped} = $1 if $t =~ /^#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)$/m;
    $p{ended} = $t =~ /^#EXT-X-ENDLIST$/m ? 1 : 0;
    my $msn = ($p{seq} // 0) + ($p{skipped} // 0);
    my $cur = { parts => [] };
    for (split /\n/, $t) {
        if (/^#EXT-X-PROGRAM-DATE-TIME:(.+)$/) { $cur->{pdt} = $1 }
        elsif (/^#EXT-X-MAP:URI="([^"]*)"/) { $cur->{map} = $1; push @{ $p{maps} }, $1 }
        elsif (/^#EXT-X-DISCONTINUITY$/) { $cur->{discont} = 1 }
        elsif (/^#EXT-X-PART:(.*)$/) {
            my $a = attrs($1);
            push @{ $cur->{parts} }, { dur => $a->{DURATION}, uri => $a->{URI}, ind => ($a->{INDEPENDENT} // '') eq 'YES' };
        }
        elsif (/^#EXTINF:([\d.]+),/) { $cur->{dur} = $1 }
        elsif (/^#EXT-X-PRELOAD-HINT:(.*)$/) { push @{ $p{hints} }, attrs($1) }
        elsif (/^#EXT-X-RENDITION-REPORT:(.*)$/) { push @{ $p{reports} }, attrs($1) }
        elsif (/^[^#\s]/) { $cur->{uri} = $_; $cur->{msn} = $msn++; push @{ $p{segs} }, $cur; $cur = { parts => [] } }
    }
    if (@{ $cur->{parts} }) { $cur->{msn} = $msn; $p{open} = $cur }
    if (@{ $p{hints} } && ($p{hints}[0]{URI} // '') =~ m{(\d+)\.(\d+)\.m4s$}) { $p{hint} = [$1, $2] }
    my ($newest) = grep { @{ $_->{parts} } } reverse(@{ $p{segs} }, $p{open} // ());
    $p{last} = [$newest->{msn}, $#{ $newest->{parts} }] if $newest;
    return \%p;
}

# The playlist of app/name over HTTP ($query: "?_HLS_msn=..."): the answer with {p} parsed when 200.
sub pl {
    my ($port, $name, $query, $secs) = @_;
    my $r = http_get($port, "/ll/live/$name.m3u8" . ($query // ''), $secs);
    $r->{p} = llp($r->{body}) if $r->{status} == 200;
    return $r;
}

# The playlist $p lists part $i of segment $m, or $i is past the last part of the complete segment
# $m and part 0 of the next one is listed (RFC 8216bis: the same request).
sub has_part {
    my ($p, $name, $m, $i) = @_;
    my %uris = map { $_->{uri} => 1 } map { @{ $_->{parts} } } @{ $p->{segs} }, $p->{open} // ();
    return 1 if $uris{"$name/$m.$i.m4s"};
    my ($s) = grep { $_->{msn} == $m } @{ $p->{segs} };
    return $s && @{ $s->{parts} } == $i && $uris{ "$name/" . ($m + 1) . '.0.m4s' } ? 1 : 0;
}

# RFC 8216bis rules of a playlist's parts and segments; a list of problems.
sub part_rules {
    my ($p, $name) = @_;
    my $pt = $p->{part_target} // 0;
    my @bad;
    for my $s (@{ $p->{segs} }, $p->{open} // ()) {
        my @parts = @{ $s->{parts} };
        my $complete = defined $s->{uri};
        if ($complete) {
            push @bad, "$s->{msn}: URI $s->{uri}" unless $s->{uri} eq "$name/$s->{msn}.m4s";
            push @bad, "$s->{msn}: EXTINF $s->{dur} rounds above TARGETDURATION $p->{target}"
                if int($s->{dur} + 0.5) > $p->{target};
        }
        push @bad, "$s->{msn}: no EXT-X-PROGRAM-DATE-TIME" unless $s->{pdt};
        next unless @parts;
        for my $i (0 .. $#parts) {
            my $q = $parts[$i];
            push @bad, "$s->{msn}.$i: URI $q->{uri}" unless $q->{uri} eq "$name/$s->{msn}.$i.m4s";
            push @bad, "$s->{msn}.$i: DURATION $q->{dur} > PART-TARGET $pt" if $q->{dur} > $pt + 0.0005;
            # The last part of the open segment may turn out to be its parent's last.
            push @bad, "$s->{msn}.$i: DURATION $q->{dur} < 0.85 x PART-TARGET $pt"
                if $q->{dur} < 0.85 * $pt - 0.001 && !$q->{ind} && $i != $#parts;
        }
        push @bad, "$s->{msn}.0: not INDEPENDENT=YES" unless $parts[0]{ind};
        if ($complete) {
            my $sum = 0;
            $sum += $_->{dur} for @parts;
            push @bad, sprintf('%s: parts add up to %.3f, EXTINF %s', $s->{msn}, $sum, $s->{dur})
                if abs($sum - $s->{dur}) > 0.005 * @parts + 1e-9;
        }
    }
    return @bad;
}

# Segment and part durations, for a diag.
sub durations {
    my ($p) = @_;
    return join "\n", map {
        sprintf('%s %s: %s', $_->{msn}, defined $_->{uri} ? "EXTINF $_->{dur}" : 'open',
                join(' ', map { $_->{dur} . ($_->{ind} ? '(I)' : '') } @{ $_->{parts} }))
    } @{ $p->{segs} }, $p->{open} // ();
}

# Records what a playlist says about each msn and part; returns the contradictions with what
# earlier playlists said (a sequence number always names the same URI, duration and date).
sub remember {
    my ($seen, $p) = @_;
    my @bad;
    my $note = sub {
        my ($k, $v) = @_;
        push @bad, "$k: '$seen->{$k}' then '$v'" if exists $seen->{$k} && $seen->{$k} ne $v;
        $seen->{$k} = $v;
    };
    push @bad, "MEDIA-SEQUENCE went back from $seen->{_seq} to $p->{seq}" if ($seen->{_seq} // 0) > ($p->{seq} // 0);
    $seen->{_seq} = $p->{seq};
    for my $s (@{ $p->{segs} }, $p->{open} // ()) {
        $note->("seg $s->{msn}", "$s->{dur} $s->{uri}") if defined $s->{uri};
        $note->("pdt $s->{msn}", $s->{pdt}) if defined $s->{pdt};
        my $i = 0;
        $note->("part $s->{msn}." . $i++, "$_->{dur} $_->{uri} $_->{ind}") for @{ $s->{parts} };
    }
    return @bad;
}

sub iso_secs {
    my ($s) = @_;
    return undef unless ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$/;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0);
}

# Problems of the EXT-X-PROGRAM-DATE-TIME tags: ISO 8601 UTC, increasing by about the segment
# durations, near the clock.
sub date_problems {
    my ($p) = @_;
    my @bad;
    my @s = (@{ $p->{segs} }, $p->{open} // ());
    for my $i (0 .. $#s) {
        my $t = iso_secs($s[$i]{pdt});
        push @bad, "$s[$i]{msn}: PROGRAM-DATE-TIME '" . ($s[$i]{pdt} // '') . "'" unless defined $t;
        next unless defined $t;
        push @bad, "$s[$i]{msn}: PROGRAM-DATE-TIME $s[$i]{pdt} is not within a minute of now"
            if abs($t - time) > 60;
        next unless $i && defined $s[$i - 1]{dur} && defined(my $prev = iso_secs($s[$i - 1]{pdt}));
        push @bad, "$s[$i]{msn}: PROGRAM-DATE-TIME $s[$i]{pdt} is not ~$s[$i - 1]{dur} s after $s[$i - 1]{pdt}"
            if abs($t - $prev - $s[$i - 1]{dur}) > 0.5;
    }
    return @bad;
}

sub median {
    my @x = sort { $a <=> $b } @_;
    return undef unless @x;
    return @x % 2 ? $x[$#x / 2] : ($x[@x / 2 - 1] + $x[@x / 2]) / 2;
}

run_tests();

__DATA__

=== TEST 1: one live stream: LL playlist tags and rules, init/parts/segments over HTTP, blocking reloads, held hinted parts, delta updates, FFmpeg, the end of the stream
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_playlist_length 30s;
        hls_low_latency on;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /ll/ {
        rtmp_hls;
    }
}
--- timeout: 120
--- run
my $port = $TEST_NGINX_HTTP_PORT;
my $dir = "$TEST_NGINX_PREFIX/hls";
my (%seen, @contradictions);
my $got = sub { my $r = pl($port, 'test', @_); push @contradictions, remember(\%seen, $r->{p}) if $r->{p}; $r };

my $unknown = pl($port, 'test');
is($unknown->{status}, 404, 'the playlist of a stream not published yet: 404');
# Publish early in a 2 s wall-clock period (see the republish at the end).
wait_until(sub { my $ms = int(Time::HiRes::time() * 1000) % 2000; $ms >= 100 && $ms <= 300 }, 3, 0.005);
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 100);
my $r;
ok(wait_until(sub { $r = $got->(); $r->{p} && @{ $r->{p}{segs} } >= 3 && $r->{p}{open} }, 40, 0.1),
   'the LL playlist lists 3 complete segments and parts of the open one')
    or return diag(publisher_log($pub) . "\n$r->{status} $r->{body}");
my $p = $r->{p};
my $t = $p->{text};
like($r->{headers}{'content-type'} // '', qr{^application/vnd\.apple\.mpegurl\b}, 'Content-Type application/vnd.apple.mpegurl');
like($t, qr/\A#EXTM3U\n#EXT-X-VERSION:9\n/, 'EXTM3U, then VERSION:9');
is($p->{target}, 2, 'TARGETDURATION:2 (2 s GOPs)');
is($p->{control}, 'CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=6.000,CAN-SKIP-UNTIL=12.000',
   'SERVER-CONTROL: blocking reload, PART-HOLD-BACK 3 x PART-TARGET, HOLD-BACK 3 x T, CAN-SKIP-UNTIL 6 x T');
is($p->{part_target}, '0.200', 'PART-INF:PART-TARGET=0.200 (hls_part defaults to 200ms)');
for my $tag (qw(VERSION TARGETDURATION SERVER-CONTROL PART-INF MEDIA-SEQUENCE)) {
    my $n = () = $t =~ /^#EXT-X-\Q$tag\E:/mg;
    is($n, 1, "one EXT-X-$tag");
}
my ($head) = split /^#EXT-X-(?:MAP|PROGRAM-DATE-TIME|PART|SKIP):|^#EXTINF:/m, $t;
like($head, qr/^#EXT-X-MEDIA-SEQUENCE:\d+$/m, 'the playlist tags come before the first segment\'s');
is(scalar @{ $p->{maps} }, 1, 'one EXT-X-MAP');
like($p->{maps}[0] // '', qr{^test/init-\d+\.mp4$}, 'EXT-X-MAP:URI="test/init-<id>.mp4"');
ok($p->{segs}[0]{map}, 'EXT-X-MAP before the first segment');
is($p->{seq}, $p->{segs}[0]{msn}, 'MEDIA-SEQUENCE is the first segment\'s number');
is(scalar @{ $p->{hints} }, 1, 'exactly one EXT-X-PRELOAD-HINT');
is($p->{hints}[0]{TYPE}, 'PART', 'a hint of TYPE=PART');
is("@{ $p->{hint} // [] }", "$p->{open}{msn} " . scalar @{ $p->{open}{parts} },
   'it names the next part of the open segment');
like($t, qr/^#EXT-X-PART:[^\n]*\n#EXT-X-PRELOAD-HINT:[^\n]*\n\z/m, 'the open segment\'s parts, then the hint, last');
ok(!$p->{ended} && $t !~ /#EXT-X-ENDLIST/, 'no EXT-X-ENDLIST while live');
unlike($t, qr/^#EXT-X-(?:SKIP|RENDITION-REPORT)/m, 'no SKIP without _HLS_skip, no RENDITION-REPORT without variants');
my @bad = part_rules($p, 'test');
is(scalar @bad, 0, 'parts: URIs, DURATION <= PART-TARGET and >= 0.85 x (but INDEPENDENT and last parts), '
   . 'first INDEPENDENT=YES, adding up to EXTINF; segment URIs and dates')
    or diag(join("\n", @bad) . "\n" . durations($p));
@bad = date_problems($p);
is(scalar @bad, 0, 'EXT-X-PROGRAM-DATE-TIME per segment, ISO 8601, a segment duration apart, near the clock')
    or diag(join "\n", @bad);

# The init segment
my ($map_id) = ($p->{maps}[0] // '') =~ /init-(\d+)\.mp4$/;
my $ir = http_get($port, "/ll/live/$p->{maps}[0]");
is($ir->{status}, 200, 'the init segment over HTTP');
like($ir->{headers}{'content-type'} // '', qr{^video/mp4\b}, 'Content-Type video/mp4');
is($ir->{body}, Test::Nginx::Rtmp::slurp("$dir/test.ll/init-$map_id.mp4"), "the same bytes as hls/test.ll/init-$map_id.mp4");
my $init = parse_init($ir->{body});
is($init->{top}, 'ftyp,moov', 'init: ftyp then moov');
is($init->{moov}, 'mvhd,trak,trak,mvex', 'moov: mvhd, two traks, mvex');
is(join(',', map { "$_->{handler}:$_->{entry}" } @{ $init->{tracks} }), 'vide:avc1,soun:mp4a', 'an avc1 and an mp4a trak');

# A complete segment with its parts listed: parts over HTTP, concatenated = the segment.
my ($whole) = grep { @{ $_->{parts} } } reverse @{ $p->{segs} };
ok($whole, 'a complete segment with its parts listed') or return;
my ($parts, @pr) = ('');
for my $q (@{ $whole->{parts} }) {
    my $x = http_get($port, "/ll/live/$q->{uri}");
    push @pr, $x;
    $parts .= $x->{body};
}
is(join(' ', map { $_->{status} } @pr), join(' ', (200) x @pr), "its " . @pr . " parts: 200");
ok(!grep({ ($_->{headers}{'content-type'} // '') !~ m{^video/mp4\b} } @pr), 'Content-Type video/mp4');
ok(!grep({ ($_->{headers}{'content-length'} // -1) != length $_->{body} } @pr), 'Content-Length = bytes sent');
my $sr = http_get($port, "/ll/live/$whole->{uri}");
is($sr->{status}, 200, "the segment $whole->{uri}");
like($sr->{headers}{'content-type'} // '', qr{^video/mp4\b}, 'Content-Type video/mp4');
ok(length $parts && $parts eq $sr->{body}, 'its parts concatenated are the segment, byte for byte')
    or diag(length($parts) . ' bytes of parts, ' . length($sr->{body}) . ' of segment');
is($sr->{body}, Test::Nginx::Rtmp::slurp("$dir/test.ll/$whole->{msn}.m4s"), 'the segment file on disk is the same');
my (%end, $last_seq);
@bad = map { tfdt_problems($whole->{parts}[$_]{uri}, $pr[$_]{body}, \%end, \$last_seq) } 0 .. $#pr;
is(scalar @bad, 0, 'parts are moof+mdat, mfhd grows, each track\'s tfdt continues from part to part')
    or diag(join "\n", @bad);
my %tracks = map { $_->{track} => 1 } map { @{ parse_segment($_->{body})->{frags} } } @pr;
is(join(',', sort keys %tracks), '1,2', 'the parts carry video and audio');
my ($v0) = grep { $_->{track} == 1 } @{ parse_segment($pr[0]{body})->{frags} };
ok($v0 && !(($v0->{first_flags} // 0x10000) & 0x10000), 'the INDEPENDENT part starts with a video sync sample');
my ($codecs, $perr) = probe_bytes($ir->{body}, $pr[0]{body});
is($codecs, 'h264,avc1;aac,mp4a', 'ffprobe reads init + part as H.264 and AAC') or diag($perr);
my ($codecs2) = probe_bytes($ir->{body}, $pr[1]{body} // '');
like($codecs2, qr/^h264,avc1;aac,mp4a$/, 'and init + a later part');

# The static playlist of plain HLS (MPEG-TS) does not advertise any of it.
my $static;
wait_until(sub { $static = Test::Nginx::Rtmp::slurp("$dir/test.m3u8"); $static =~ /\.ts$/m }, 10, 0.1);
like($static, qr/^#EXTINF:.*\n[^#\n]+\.ts$/m, 'plain HLS writes its MPEG-TS playlist as before');
unlike($static, qr/CAN-BLOCK-RELOAD|#EXT-X-PART|#EXT-X-PRELOAD-HINT|#EXT-X-SERVER-CONTROL/,
       'without SERVER-CONTROL, PART or PRELOAD-HINT');

# Blocking reload for the hinted part, and a GET of the hinted part, both held until it exists.
# A hint early in its segment, so that the part will exist (the hint after a segment's last part
# names a part that never comes: part 0 of the next segment comes instead).
ok(wait_until(sub { $r = $got->(); $r->{p} && $r->{p}{hint} && $r->{p}{hint}[1] >= 1 && $r->{p}{hint}[1] <= 6 }, 10, 0.02),
   'a hint for part 1..6 of a segment');
my ($hm, $hi) = @{ $r->{p}{hint} };
my $pending_pl = http_start($port, "/ll/live/test.m3u8?_HLS_msn=$hm&_HLS_part=$hi");
my $pending_part = http_start($port, "/ll/live/test/$hm.$hi.m4s");
my $br = http_finish($pending_pl, 10);
my $hp = http_finish($pending_part, 10);
is($br->{status}, 200, "_HLS_msn=$hm&_HLS_part=$hi (the hinted part): 200");
cmp_ok($br->{secs} // 99, '<', 3 * 2, sprintf('within 3 target durations (%.3f s)', $br->{secs} // -1));
note(sprintf('blocking reload held %.3f s, hinted part held %.3f s', $br->{secs} // -1, $hp->{secs} // -1));
my $bp = llp($br->{body});
push @contradictions, remember(\%seen, $bp);
ok(has_part($bp, 'test', $hm, $hi), "the answer lists part $hm.$hi") or diag($br->{body});
like($br->{headers}{'content-type'} // '', qr{^application/vnd\.apple\.mpegurl\b}, 'as a playlist');
is($hp->{status}, 200, "GET of the hinted part test/$hm.$hi.m4s: 200 once it exists");
like($hp->{headers}{'content-type'} // '', qr{^video/mp4\b}, 'Content-Type video/mp4');
cmp_ok($hp->{secs} // 99, '<', 3 * 2, sprintf('within 3 target durations (%.3f s)', $hp->{secs} // -1));
ok(length $hp->{body} && ($hp->{headers}{'content-length'} // -1) == length $hp->{body}, 'Content-Length = the bytes sent');
# Parts lie one after another in their segment's file, which grows part by part.
my $before = join '', map { http_get($port, "/ll/live/test/$hm.$_.m4s")->{body} } 0 .. $hi - 1;
my $on_disk = Test::Nginx::Rtmp::slurp("$dir/test.ll/$hm.m4s");
ok(length $on_disk >= length($before) + length($hp->{body})
   && substr($on_disk, 0, length($before) + length($hp->{body})) eq $before . $hp->{body},
   "the held part is the bytes after parts $hm.0..$hm." . ($hi - 1) . " in the segment file hls/test.ll/$hm.m4s");

# Requests for what exists answer at once.
$r = $got->();
my ($lm, $li) = @{ $r->{p}{last} };
my $now = pl($port, 'test', "?_HLS_msn=$lm&_HLS_part=$li");
is($now->{status}, 200, "_HLS_msn=$lm&_HLS_part=$li (the newest part): 200");
cmp_ok($now->{secs}, '<', 0.5, sprintf('at once (%.3f s)', $now->{secs}));
ok($now->{p} && has_part($now->{p}, 'test', $lm, $li), 'listing it');
my $old = pl($port, 'test', "?_HLS_msn=$whole->{msn}&_HLS_part=0");
is($old->{status}, 200, 'an older part: 200');
cmp_ok($old->{secs}, '<', 0.5, sprintf('at once (%.3f s)', $old->{secs}));
my $op = http_get($port, "/ll/live/$whole->{parts}[0]{uri}");
cmp_ok($op->{secs}, '<', 0.5, 'a part that exists comes at once');

# _HLS_msn alone: held until that segment is complete.
$r = $got->();
my $om = $r->{p}{open}{msn};
my $seg_wait = pl($port, 'test', "?_HLS_msn=$om", 10);
is($seg_wait->{status}, 200, "_HLS_msn=$om (the open segment) without _HLS_part: 200");
cmp_ok($seg_wait->{secs} // 99, '<', 3 * 2, sprintf('within 3 target durations (%.3f s)', $seg_wait->{secs} // -1));
ok($seg_wait->{p} && grep({ $_->{msn} == $om } @{ $seg_wait->{p}{segs} }), "once segment $om is complete")
    or diag($seg_wait->{body});

# A part index past the last part of a complete segment is part 0 of the next segment: catch a
# segment that just completed (the hint names part 0 of the next) and ask for its "next" part.
my $caught = wait_until(sub { $r = $got->(); $r->{p} && $r->{p}{hint} && $r->{p}{hint}[1] == 0 && @{ $r->{p}{segs}[-1]{parts} } }, 12, 0.01);
SKIP: {
    skip('did not catch a playlist between two segments', 4) unless $caught;
    my $done = $r->{p}{segs}[-1];
    my $n = @{ $done->{parts} };
    my $past = pl($port, 'test', "?_HLS_msn=$done->{msn}&_HLS_part=$n", 10);
    is($past->{status}, 200, "_HLS_msn=$done->{msn}&_HLS_part=$n (past its $n parts): 200");
    cmp_ok($past->{secs} // 99, '<', 3 * 2, sprintf('within 3 target durations (%.3f s)', $past->{secs} // -1));
    my $answered = Time::HiRes::time();
    ok($past->{p} && grep({ $_->{uri} eq 'test/' . ($done->{msn} + 1) . '.0.m4s' } map { @{ $_->{parts} } } @{ $past->{p}{segs} }, $past->{p}{open} // ()),
       'held until part 0 of the next segment is listed') or diag($past->{body});
    # That answer came as part 0 appeared: its segment's first sample had arrived a part's
    # duration earlier, and EXT-X-PROGRAM-DATE-TIME is the date of that first sample.
    my ($next) = grep { $_->{msn} == $done->{msn} + 1 } @{ $past->{p}{segs} }, $past->{p}{open} // ();
    my $pdt = $next ? iso_secs($next->{pdt}) : undef;
    my $d0 = $next && $next->{parts}[0] ? $next->{parts}[0]{dur} : 0.2;
    my $age = defined $pdt ? $answered - $pdt : -99;
    ok($age >= $d0 - 0.1 && $age <= $d0 + 0.5,
       sprintf('PROGRAM-DATE-TIME of segment %s is its first sample\'s date: %.3f s before its first part '
               . '(%.3f s long) could be listed', $done->{msn} + 1, $age, $d0))
        or diag($next ? "$next->{pdt}, answered at " . sprintf('%.3f', $answered) : $past->{body});
}

# Bad directives: 400 at once.
$r = $got->();
my $open = $r->{p}{open} ? $r->{p}{open}{msn} : $r->{p}{segs}[-1]{msn} + 1;
for my $case (["?_HLS_part=1", '_HLS_part without _HLS_msn'],
              ['?_HLS_msn=' . ($open + 3), '_HLS_msn more than 2 past the last segment'],
              ['?_HLS_msn=' . ($open + 3) . '&_HLS_part=0', 'the same with _HLS_part'],
              ['?_HLS_msn=abc', '_HLS_msn not a number'],
              ["?_HLS_msn=$open&_HLS_part=x", '_HLS_part not a number'],
              ['?_HLS_msn=-1', 'a negative _HLS_msn']) {
    my $x = pl($port, 'test', $case->[0], 10);
    is($x->{status}, 400, "$case->[1] ($case->[0]): 400");
    cmp_ok($x->{secs} // 99, '<', 0.5, 'at once');
}

# 404s
for my $case (["/ll/live/test/" . ($open + 5) . '.0.m4s', 'a part 5 segments ahead'],
              ["/ll/live/test/" . ($open + 5) . '.m4s', 'a segment 5 ahead'],
              ['/ll/live/test/init-1.mp4', 'an unknown init'],
              ['/ll/live/nosuch.m3u8', 'the playlist of an unknown stream'],
              ['/ll/live/nosuch/1.0.m4s', 'a part of an unknown stream'],
              ['/ll/other/test.m3u8', 'the stream under another application'],
              ['/ll/live/test/x.ts', 'not an LL file name']) {
    my $x = http_get($port, $case->[0], 10);
    is($x->{status}, 404, "$case->[1] ($case->[0]): 404");
    cmp_ok($x->{secs} // 99, '<', 0.5, 'at once');
}

# FFmpeg plays the LL playlist over HTTP (as a plain HLS client: segments).
my ($vf, $af, $ferr) = count_frames("http://127.0.0.1:$port/ll/live/test.m3u8", 4);
cmp_ok($vf, '>=', 80, "ffmpeg decodes 4 s of the LL playlist ($vf video, $af audio frames)");
is($ferr, '', 'without an error');

# Delta updates, once ~20 s of stream make segments older than CAN-SKIP-UNTIL (12 s).
ok(wait_until(sub { $r = $got->(); $r->{p} && @{ $r->{p}{segs} } >= 9 }, 30, 0.2), 'nine complete segments')
    or return diag($r->{body});
$p = $r->{p};
@bad = part_rules($p, 'test');
is(scalar @bad, 0, 'the rules hold on the long playlist') or diag(join("\n", @bad) . "\n" . durations($p));
@bad = date_problems($p);
is(scalar @bad, 0, 'and the dates') or diag(join "\n", @bad);
# Parts are listed for the segments in the last 3 target durations, not for the whole window.
my @with = grep { @{ $_->{parts} } } @{ $p->{segs} };
my @without = grep { !@{ $_->{parts} } } @{ $p->{segs} };
ok(@without && @with && $without[-1]{msn} < $with[0]{msn}, 'the newest complete segments list their parts, the older ones not');
my $listed = 0;
$listed += $_->{dur} for map { @{ $_->{parts} } } @with, $p->{open} // ();
ok($listed >= 3 * 2 - 0.001 && $listed <= 4 * 2 + 0.5, "parts listed for the last 3 target durations ($listed s)")
    or diag(durations($p));
my ($skip, $full, $same);
for my $try (1 .. 5) {
    # Both held for the same next part: they answer from the same state.
    $r = $got->();
    my ($m, $i) = @{ $r->{p}{hint} };
    my $hf = http_start($port, "/ll/live/test.m3u8?_HLS_msn=$m&_HLS_part=$i");
    my $hs = http_start($port, "/ll/live/test.m3u8?_HLS_msn=$m&_HLS_part=$i&_HLS_skip=YES");
    $full = http_finish($hf, 10);
    $skip = http_finish($hs, 10);
    $full->{p} = llp($full->{body});
    $skip->{p} = llp($skip->{body});
    $same = $full->{p}{last} && $skip->{p}{last} && "@{ $full->{p}{last} }" eq "@{ $skip->{p}{last} }";
    last if $same;
}
is($skip->{status}, 200, '_HLS_skip=YES: 200');
like($skip->{headers}{'content-type'} // '', qr{^application/vnd\.apple\.mpegurl\b}, 'as a playlist');
my $sp = $skip->{p};
my $fp = $full->{p};
ok($same, 'a full and a delta playlist of the same moment (held for the same part)');
like($skip->{body}, qr/\A#EXTM3U\n#EXT-X-VERSION:9\n/, 'VERSION:9');
like($skip->{body}, qr/^#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+$/m, 'EXT-X-SKIP:SKIPPED-SEGMENTS') or diag($skip->{body});
my $n = $sp->{skipped} // 0;
cmp_ok($n, '>=', 1, "$n segments skipped");
is($sp->{seq}, $fp->{seq}, 'MEDIA-SEQUENCE is the full playlist\'s (the first skipped segment)');
is($n + @{ $sp->{segs} }, scalar @{ $fp->{segs} }, 'skipped + listed = the full playlist\'s segments');
like($skip->{body}, qr/^#EXT-X-MEDIA-SEQUENCE:\d+\n#EXT-X-SKIP:/m, 'EXT-X-SKIP right after the playlist tags');
# What a delta update leaves out must end at least CAN-SKIP-UNTIL before the playlist's end.
my $kept = 0;
$kept += $_->{dur} for @{ $sp->{segs} };
$kept += $_->{dur} for @{ ($sp->{open} // { parts => [] })->{parts} };
cmp_ok($kept, '>=', 12 - 0.001, "the segments after the skip span at least CAN-SKIP-UNTIL ($kept s)");
# The rest is the full playlist's tail, line for line (the delta repeats EXT-X-MAP at its top).
my ($after) = $skip->{body} =~ /^#EXT-X-SKIP:[^\n]*\n(.*)\z/ms;
my $tail = '';
if ($n && $n < @{ $fp->{segs} }) {
    my $prev_uri = $fp->{segs}[$n - 1]{uri};
    ($tail) = $full->{body} =~ /^\Q$prev_uri\E\n(.*)\z/ms;
}
my $strip = sub { my $s = shift // ''; $s =~ s/^#EXT-X-MAP:[^\n]*\n//mg; $s };
is($strip->($after), $strip->($tail), 'after EXT-X-SKIP: the full playlist from its first kept segment on')
    or diag("delta:\n$skip->{body}\nfull:\n$full->{body}");
like($after // '', qr/\A(?:#EXT-X-DISCONTINUITY\n)?#EXT-X-MAP:URI="test\/init-\d+\.mp4"\n/,
     'the first segment after the skip names its init');
push @contradictions, remember(\%seen, $fp), remember(\%seen, $sp);
is(scalar @contradictions, 0, 'across all reloads, a sequence number always names the same URI, duration and date')
    or diag(join "\n", @contradictions[0 .. ($#contradictions < 9 ? $#contradictions : 9)]);

# The publisher stops (just after a segment began): EXT-X-ENDLIST, no hint, directives ignored.
wait_until(sub { $r = $got->(); $r->{p} && $r->{p}{hint} && $r->{p}{hint}[1] == 1 }, 6, 0.01);
# A request held for a part of the next segment: the end answers it.
my $held_m = $r->{p}{hint}[0] + 1;
my $held = http_start($port, "/ll/live/test.m3u8?_HLS_msn=$held_m&_HLS_part=3");
stop($pub);
my $stopped = Time::HiRes::time();
my $he = http_finish($held, 10);
my $late = Time::HiRes::time() - $stopped;
is($he->{status}, 200, "a reload held for part $held_m.3 when the publisher left: 200");
like($he->{body}, qr/#EXT-X-ENDLIST\n\z/, 'with the ended playlist');
cmp_ok($late, '<', 1.5, sprintf('as the stream ended (%.3f s after the publisher exited), not after 3 target durations', $late));
ok(wait_until(sub { $r = $got->(); $r->{p} && $r->{p}{ended} }, 10, 0.1), 'after the publisher left: EXT-X-ENDLIST')
    or diag($r->{body});
$p = $r->{p};
like($p->{text}, qr/#EXT-X-ENDLIST\n\z/, 'at the end');
is(scalar @{ $p->{hints} }, 0, 'no PRELOAD-HINT');
ok(!$p->{open}, 'no open segment: its parts made a last complete segment');
@bad = part_rules($p, 'test');
is(scalar @bad, 0, 'the rules hold on the ended playlist') or diag(join("\n", @bad) . "\n" . durations($p));
my $lastm = $p->{segs}[-1]{msn};
my $ahead = pl($port, 'test', '?_HLS_msn=' . ($lastm + 1) . '&_HLS_part=0', 10);
is($ahead->{status}, 200, 'a blocking reload for a part that will never come: 200');
cmp_ok($ahead->{secs} // 99, '<', 0.5, sprintf('at once (%.3f s)', $ahead->{secs} // -1));
like($ahead->{body}, qr/#EXT-X-ENDLIST\n\z/, 'the ended playlist');
my $never = http_get($port, '/ll/live/test/' . ($lastm + 1) . '.0.m4s', 10);
is($never->{status}, 404, 'the part after the end: 404');
cmp_ok($never->{secs} // 99, '<', 0.5, 'at once');
my $lastseg = http_get($port, "/ll/live/test/$lastm.m4s");
is($lastseg->{status}, 200, 'the last segment is there');
push @contradictions, remember(\%seen, $p);
is(scalar @contradictions, 0, 'the ended playlist agrees with the live ones');

# A republish at once: a new live playlist whose numbers, and so URIs, the ended one never used
# (players and caches hold those; parts and segments go out with max-age=60). The first publish
# began early in a 2 s wall-clock period and the stream stopped just after a segment began: numbers
# taken from the clock alone (publish time / hls_fragment) would repeat the last one here.
my %old_uris = map { $_ => 1 } map { ($_->{uri}, map { $_->{uri} } @{ $_->{parts} }) } @{ $p->{segs} };
$pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 30);
ok(wait_until(sub { $r = pl($port, 'test'); $r->{p} && !$r->{p}{ended} && $r->{p}{open} }, 15, 0.02),
   'a republish makes a new live playlist') or return diag(publisher_log($pub));
cmp_ok($r->{p}{seq}, '>', $lastm, "its MEDIA-SEQUENCE $r->{p}{seq} is past the ended playlist's last segment $lastm");
my @reused = grep { $old_uris{$_} } map { ($_->{uri} // (), map { $_->{uri} } @{ $_->{parts} }) } @{ $r->{p}{segs} }, $r->{p}{open};
is(scalar @reused, 0, 'none of its part or segment URIs was one of the ended playlist\'s') or diag("@reused");
@bad = part_rules($r->{p}, 'test');
is(scalar @bad, 0, 'its rules hold') or diag(join("\n", @bad) . "\n" . durations($r->{p}));
stop($pub);
--- no_error_log
[error]



=== TEST 2: two workers with reuseport: both answer LL playlists, blocking reloads and held parts of a stream published in one of them; variants get rendition reports; hls_part 300ms
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_low_latency on;
        hls_part 300ms;
        hls_variant _hi BANDWIDTH=800000;
        hls_variant _lo BANDWIDTH=300000;
    }
}
--- http_config
log_format pids '$pid $status "$request"';
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT reuseport;
    access_log logs/ll.log pids;
    location /ll/ {
        rtmp_hls;
    }
}
--- timeout: 90
--- run
my $port = $TEST_NGINX_HTTP_PORT;
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $hi = publish("$base/test_hi", loop => 1, timeout => 60);
my $lo = publish("$base/test_lo", loop => 1, timeout => 60);
my ($rh, $rl);
ok(wait_until(sub {
    $rh = pl($port, 'test_hi');
    $rl = pl($port, 'test_lo');
    $rh->{p} && $rl->{p} && @{ $rh->{p}{segs} } >= 2 && @{ $rl->{p}{segs} } >= 2 && @{ $rh->{p}{reports} }
}, 30, 0.1), 'both variants have LL playlists') or return diag(publisher_log($hi) . $rh->{body} . $rl->{body});
my $p = $rh->{p};
is($p->{part_target}, '0.300', 'PART-INF:PART-TARGET=0.300');
like($p->{control}, qr/^CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0\.900,HOLD-BACK=6\.000,CAN-SKIP-UNTIL=12\.000$/,
     'PART-HOLD-BACK=0.900 (3 x 300 ms)');
my @bad = part_rules($p, 'test_hi');
is(scalar @bad, 0, '300 ms parts keep the rules') or diag(join("\n", @bad) . "\n" . durations($p));

# Rendition reports: each variant names the other, with its newest part at that moment.
my $before = pl($port, 'test_lo')->{p}{last};
my $hr = pl($port, 'test_hi');
my $after = pl($port, 'test_lo')->{p}{last};
my @reports = @{ $hr->{p}{reports} };
is(scalar @reports, 1, 'test_hi has one EXT-X-RENDITION-REPORT') or diag($hr->{body});
is($reports[0]{URI}, 'test_lo.m3u8', 'for test_lo.m3u8 (relative to the playlist)');
my @rep = ($reports[0]{'LAST-MSN'} // -1, $reports[0]{'LAST-PART'} // -1);
my $le = sub { $_[0][0] < $_[1][0] || ($_[0][0] == $_[1][0] && $_[0][1] <= $_[1][1]) };
ok($le->($before, \@rep) && $le->(\@rep, $after), "LAST-MSN/LAST-PART @rep: test_lo's newest part then (between @$before and @$after)");
like($hr->{body}, qr/^#EXT-X-PRELOAD-HINT:[^\n]*\n#EXT-X-RENDITION-REPORT:[^\n]*\n\z/m, 'after the preload hint');
my @lr = @{ pl($port, 'test_lo')->{p}{reports} };
is(join(',', map { $_->{URI} } @lr), 'test_hi.m3u8', 'test_lo reports test_hi');
# The variants' master playlist under the base name, pointing at the LL playlists.
my $mr;
wait_until(sub { $mr = http_get($port, '/ll/live/test.m3u8'); $mr->{body} =~ /test_lo\.m3u8/ && $mr->{body} =~ /test_hi\.m3u8/ }, 10, 0.2);
is($mr->{status}, 200, '/ll/live/test.m3u8: the master playlist');
like($mr->{headers}{'content-type'} // '', qr{^application/vnd\.apple\.mpegurl\b}, 'as a playlist');
is(join(',', $mr->{body} =~ /^#EXT-X-STREAM-INF:[^\n]*\n([^#\n]+)$/mg), 'test_hi.m3u8,test_lo.m3u8',
   'each EXT-X-STREAM-INF names a variant\'s LL playlist') or diag($mr->{body});

# Fresh connections spread over both workers by reuseport: every request answers.
my @workers = Test::Nginx::Rtmp::worker_pids(master_pid());
is(scalar @workers, 2, 'two workers');
my (%pids, @failed, $rounds, $held);
for my $round (1 .. 8) {
    $rounds = $round;
    my $r;
    wait_until(sub { $r = pl($port, 'test_hi'); $r->{p} && $r->{p}{hint} && $r->{p}{hint}[1] >= 1 && $r->{p}{hint}[1] <= 4 }, 5, 0.02);
    my ($m, $i) = @{ $r->{p}{hint} // [0, 0] };
    my @h;
    push @h, ['block', http_start($port, "/ll/live/test_hi.m3u8?_HLS_msn=$m&_HLS_part=$i")] for 1 .. 8;
    push @h, ['hint', http_start($port, "/ll/live/test_hi/$m.$i.m4s")] for 1 .. 8;
    push @h, ['plain', http_start($port, '/ll/live/test_lo.m3u8')] for 1 .. 8;
    for (@h) {
        my ($kind, $hd) = @$_;
        my $x = http_finish($hd, 10);
        my $ok = $x->{status} == 200;
        $ok &&= has_part(llp($x->{body}), 'test_hi', $m, $i) if $kind eq 'block';
        $ok &&= length $x->{body} && length $x->{body} == ($x->{headers}{'content-length'} // -1) if $kind eq 'hint';
        $ok &&= $x->{body} =~ /^#EXT-X-PRELOAD-HINT:/m if $kind eq 'plain';
        $held++ if $kind ne 'plain';
        push @failed, "$kind $x->{path}: $x->{status} " . ($x->{error} // '') . ' ' . substr($x->{body}, 0, 200) unless $ok;
    }
    %pids = map { /^(\d+) 200 "GET \/ll\// ? ($1 => 1) : () } split /\n/, Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/ll.log");
    last if $round >= 2 && keys %pids >= 2;
}
is(scalar @failed, 0, "$rounds rounds of 24 requests on fresh connections ($held held): all answered 200 with what was asked")
    or diag(join "\n", @failed[0 .. ($#failed < 9 ? $#failed : 9)]);
is(join(',', sort keys %pids), join(',', sort @workers), 'both workers answered LL requests (access log $pid)');
stop($_) for $hi, $lo;
--- no_error_log
[error]



=== TEST 3: hls_part below 50ms fails nginx -t at its line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        hls on;
        hls_path /tmp;
        hls_low_latency on;
        hls_part 10ms;
    }
}
--- must_die: "hls_part" must be at least 50 ?ms
--- must_die_line: 7



=== TEST 4: hls_low_latency on needs hls on
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls_low_latency on;
    }
}
--- must_die: "hls_low_latency" is on in application "live" but "hls" is off



=== TEST 5: hls_part must be at most half of hls_fragment
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        hls on;
        hls_path /tmp;
        hls_fragment 1s;
        hls_low_latency on;
        hls_part 600ms;
    }
}
--- must_die: must be at most half of "hls_fragment"



=== TEST 6: hls_low_latency takes on or off, at its line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        hls on;
        hls_path /tmp;
        hls_low_latency bogus;
    }
}
--- must_die: invalid value "bogus" in "hls_low_latency" directive
--- must_die_line: 6



=== TEST 7: rtmp_hls takes no argument
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /ll/ {
        rtmp_hls on;
    }
}
--- must_die: invalid number of arguments in "rtmp_hls" directive
--- must_die_line: http_config:4



=== TEST 8: the bounds themselves pass: hls_part 50ms, hls_part at half of hls_fragment, set on rtmp{} and inherited; hls_part without hls_low_latency, hls off
--- config
hls_part 1s;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application half {
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_low_latency on;
    }
    application min {
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_low_latency on;
        hls_part 50ms;
    }
    application plain {
        live on;
        hls_low_latency off;
        hls_part 300ms;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /ll/ {
        rtmp_hls;
    }
}
--- run
is(http_get($TEST_NGINX_HTTP_PORT, '/ll/half/x.m3u8')->{status}, 404, 'nothing published: 404');
--- no_error_log
[error]



=== TEST 9: hls.js in lowLatencyMode in headless Chromium plays the LL playlist with blocking reloads, under 2 s behind live
--- config
# 300 ms parts: hls.js 1.5.20 now and then skips the last 200 ms part of a segment (its fragment
# lookup tolerance is 0.25 s), fills the hole with the whole segment once complete, and stalls for
# 2 s when that comes too late (a run in four); it plays 300 ms parts without a stall.
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/hls;
        hls_fragment 2s;
        hls_low_latency on;
        hls_part 300ms;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /ll/ {
        rtmp_hls;
    }
    # t/web/hls.html and hls.min.js, copied into html/web/ by browser_play_hls().
    location /web/ {
        root html;
    }
    location = /favicon.ico {
        return 204;
    }
}
--- timeout: 150
--- run
my @missing = grep { !-x $_ } qw(/usr/bin/chromium /usr/bin/chromedriver /usr/bin/python3);
push @missing, 'python3-selenium'
    if -x '/usr/bin/python3' && system('/usr/bin/python3 -c "import selenium" 2>/dev/null') != 0;
SKIP: {
skip("no @missing (run scripts/setup)", 12) if @missing;
my $port = $TEST_NGINX_HTTP_PORT;
my $writer = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 120);
my $r;
ok(wait_until(sub { $r = pl($port, 'test'); $r->{p} && @{ $r->{p}{segs} } >= 2 }, 30, 0.2),
   'the LL playlist has 2 complete segments') or diag(publisher_log($writer));
my $res = browser_play_hls("http://127.0.0.1:$port/web/hls.html?ll=1&src=/ll/live/test.m3u8",
                           seconds => 15, screenshot => 'target/llhls-browser.png');
ok($res, 'the browser ran') or return 1;
note(explain({ map { $_ => $res->{$_} } grep { $_ ne 'samples' } keys %$res }));
ok($res->{low_latency_mode}, 'hls.js ran with lowLatencyMode on');
ok($res->{started}, 'playback started');
cmp_ok($res->{advanced_s}, '>=', 8, 'playback advanced at least 8 s in 15 s');
is($res->{width}, 640, 'video width');
is(scalar @{ $res->{fatal_errors} || [] }, 0, 'no fatal hls.js error') or diag(explain($res->{fatal_errors}));
my @lat = @{ $res->{latency_s} || [] };
my @wall = @{ $res->{wall_latency_s} || [] };
my @lat2 = @lat[int(@lat / 2) .. $#lat];
my @wall2 = @wall[int(@wall / 2) .. $#wall];
my ($lm, $wm) = (median(@lat2), median(@wall2));
my $fmt = sub { defined $_[0] ? sprintf('%.3f', $_[0]) : '?' };
diag(sprintf('LL-HLS latency: hls.latency median %s s (last half of %d samples, max %s s), wall-clock '
             . '(Date.now() - playingDate) median %s s (last half of %d samples, max %s s), startup %s s, %d stalls',
             $fmt->($lm), scalar @lat, $fmt->(@lat2 ? (sort { $b <=> $a } @lat2)[0] : undef),
             $fmt->($wm), scalar @wall, $fmt->(@wall2 ? (sort { $b <=> $a } @wall2)[0] : undef),
             $res->{startup_s} // '?', $res->{waiting} // 0));
my $judged = defined $wm ? $wm : $lm;
ok(defined $judged, 'latency samples were taken');
cmp_ok($judged // 99, '<', 2.0, 'the ' . (defined $wm ? 'wall-clock' : 'hls.latency') . ' latency median is under 2 s')
    or diag("hls.latency: @lat\nwall-clock: @wall\nfirst loads: @{ $res->{firstFrags} || [] }");
# hls.js used the LL protocol, not plain reloads.
my @req = map { /"GET (\S+)/ ? $1 : () } split /\n/, Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log");
my @blocking = grep { /\.m3u8\?.*_HLS_msn=\d+/ } @req;
my @parts = grep { m{/ll/live/test/\d+\.\d+\.m4s} } @req;
cmp_ok(scalar @blocking, '>=', 10, scalar(@blocking) . ' blocking playlist reloads');
cmp_ok(scalar @parts, '>=', 20, scalar(@parts) . ' part requests');
ok(defined wait_publisher($writer, 0) ? 0 : 1, 'the publisher was still running');
}
--- no_error_log
[error]
