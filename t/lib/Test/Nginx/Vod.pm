package Test::Nginx::Vod;
# Helpers of the VOD tests (t/26-vod.t, t/30-vod-files.t): the test files in a play directory, and
# a raw RTMP player that reads every message (chunk headers of every format, Set Chunk Size).
use strict;
use warnings;
use Exporter 'import';
use File::Copy ();
use File::Path ();
use IO::Select;
use Time::HiRes ();
use Test::Nginx::Rtmp ();

our @EXPORT_OK = qw(make_files make_hevc_mp4 file_frames
                    raw_player raw_cmd raw_play next_msg parse_msg wait_msg wait_each
                    status_of level_of is_frame is_key meta_num);

# ---------------------------------------------------------------------------------------------
# Test files

# The files of the tests in $dir (under the prefix): test.flv, test.mp4 (faststart), late.mp4 (moov
# at the end), hevc.mp4 (when FFmpeg can make it).
sub make_files {
    my $dir = "$ENV{TEST_NGINX_PREFIX}/" . shift;
    File::Path::make_path($dir);
    File::Copy::copy(Test::Nginx::Rtmp::media(), "$dir/test.flv") or die "copy: $!";
    for (['test.mp4', '-movflags', '+faststart'], ['late.mp4']) {
        my ($name, @opt) = @$_;
        my ($code, undef, $err) = Test::Nginx::Rtmp::run_cmd(
            ['ffmpeg', '-v', 'error', '-y', '-i', "$dir/test.flv", '-c', 'copy', @opt, "$dir/$name"], timeout => 30);
        die "ffmpeg $name: $err" if $code;
    }
    return $dir;
}

sub make_hevc_mp4 {
    my $dir = "$ENV{TEST_NGINX_PREFIX}/" . shift;
    File::Path::make_path($dir);
    my $raw = Test::Nginx::Rtmp::repo_root() . '/target/media/test.hevc';
    Test::Nginx::Rtmp::hevc_flv('enhanced') unless -s $raw;
    my ($code, undef, $err) = Test::Nginx::Rtmp::run_cmd(
        ['ffmpeg', '-v', 'error', '-y', '-r', '25', '-f', 'hevc', '-i', $raw, '-c', 'copy', '-tag:v', 'hvc1',
         '-movflags', '+faststart', "$dir/hevc.mp4"], timeout => 30);
    return $code ? undef : "$dir/hevc.mp4";
}

# Frames ffprobe counts in a file: (video, audio).
sub file_frames {
    my ($code, $out) = Test::Nginx::Rtmp::run_cmd(
        ['ffprobe', '-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,nb_read_frames',
         '-of', 'csv=p=0', shift], timeout => 30);
    my %n;
    for (split /\n/, $out) { $n{$1} = $2 if /^(\w+),(\d+)/ }
    return ($n{video} // 0, $n{audio} // 0);
}

# ---------------------------------------------------------------------------------------------
# A raw RTMP player that reads messages (chunk headers of every format, Set Chunk Size).

# Connects to app $app and creates a stream; hvc1 => 1 announces HEVC (Enhanced RTMP fourCcList).
# Returns the player (sock, msgs: every message read so far, msid), undef on failure.
sub raw_player {
    my ($port, $app, %opt) = @_;
    my $s = Test::Nginx::Rtmp::rtmp_connect_raw($port) or return;
    Test::Nginx::Rtmp::rtmp_handshake($s) or return;
    my @props = (app => Test::Nginx::Rtmp::amf_str($app), flashVer => Test::Nginx::Rtmp::amf_str('LNX 9,0,124,2'),
                 tcUrl => Test::Nginx::Rtmp::amf_str("rtmp://127.0.0.1:$port/$app"));
    push @props, fourCcList => "\x0a\x00\x00\x00\x01" . Test::Nginx::Rtmp::amf_str('hvc1') if $opt{hvc1};
    Test::Nginx::Rtmp::send_bytes($s, Test::Nginx::Rtmp::rtmp_chunk(3, 20, 0,
        Test::Nginx::Rtmp::amf_cmd('connect', 1, Test::Nginx::Rtmp::amf_obj(@props)))) or return;
    my $r = { sock => $s, buf => '', csize => 128, cs => {}, msgs => [] };
    wait_msg($r, sub { status_of($_[0]) =~ /Connect\.Success/ }, 5) or return;
    Test::Nginx::Rtmp::send_bytes($s, Test::Nginx::Rtmp::rtmp_chunk(3, 20, 0,
        Test::Nginx::Rtmp::amf_cmd('createStream', 2, Test::Nginx::Rtmp::amf_null()))) or return;
    my $res = wait_msg($r, sub { $_[0]{type} == 20 && $_[0]{data} =~ /^\x02\x00\x07_result/ }, 5) or return;
    $r->{msid} = unpack('d>', substr($res->{data}, -8));
    return $r;
}

# Sends command $name on the player's stream, with a null command object and @args (AMF0 values).
sub raw_cmd {
    my ($r, $name, @args) = @_;
    Test::Nginx::Rtmp::send_bytes($r->{sock}, Test::Nginx::Rtmp::rtmp_chunk(8, 20, $r->{msid},
        Test::Nginx::Rtmp::amf_cmd($name, 0, Test::Nginx::Rtmp::amf_null(), @args)));
}

sub raw_play {
    my ($r, $name, $start) = @_;
    raw_cmd($r, 'play', Test::Nginx::Rtmp::amf_str($name), Test::Nginx::Rtmp::amf_num($start // -2));
}

# The next message (hashref type, msid, ts, data, at: when it was read), or undef after $secs
# seconds or at EOF.
sub next_msg {
    my ($r, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 5);
    while (1) {
        my $m = parse_msg($r);
        return $m if $m;
        return undef if $r->{eof};
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0;
        my $sel = IO::Select->new($r->{sock});
        next unless $sel->can_read($left);
        read_more($r);
    }
}

sub read_more {
    my $r = shift;
    my $n = sysread($r->{sock}, $r->{buf}, 65536, length $r->{buf});
    $r->{eof} = 1 unless $n;
}

# The next whole message in the bytes read so far (appended to $r->{msgs}), undef if none yet.
sub parse_msg {
    my $r = shift;
    while (1) {
        my $b = $r->{buf};
        my $p = 0;
        return undef if length $b < 1;
        my $b0 = ord substr($b, $p++, 1);
        my ($fmt, $csid) = ($b0 >> 6, $b0 & 0x3f);
        if ($csid == 0) { return undef if length $b < 2; $csid = 64 + ord substr($b, $p++, 1) }
        elsif ($csid == 1) { return undef if length $b < 3; $csid = 64 + unpack('v', substr($b, $p, 2)); $p += 2 }
        my $c = $r->{cs}{$csid} //= { ts => 0, len => 0, type => 0, msid => 0, delta => 0, part => undef };
        my $hl = [11, 7, 3, 0]->[$fmt];
        return undef if length $b < $p + $hl;
        my $h = substr($b, $p, $hl);
        $p += $hl;
        my $tsf = $fmt < 3 ? unpack('N', "\0" . substr($h, 0, 3)) : undef;
        if ($fmt < 3 && $tsf == 0xffffff) { return undef if length $b < $p + 4; $tsf = unpack('N', substr($b, $p, 4)); $p += 4 }
        if ($fmt <= 1) { $c->{len} = unpack('N', "\0" . substr($h, 3, 3)); $c->{type} = ord substr($h, 6, 1) }
        $c->{msid} = unpack('V', substr($h, 7, 4)) if $fmt == 0;
        my $new = !defined $c->{part};
        my $ts = $c->{ts};
        if ($new) {
            if ($fmt == 0) { $ts = $tsf; $c->{delta} = 0 }
            elsif ($fmt < 3) { $c->{delta} = $tsf; $ts += $tsf }
            else { $ts += $c->{delta} }
        }
        my $have = $new ? 0 : length $c->{part};
        my $take = $c->{len} - $have;
        $take = $r->{csize} if $take > $r->{csize};
        return undef if length $b < $p + $take;
        $c->{ts} = $ts;
        $c->{part} = ($new ? '' : $c->{part}) . substr($b, $p, $take);
        substr($r->{buf}, 0, $p + $take) = '';
        next if length $c->{part} < $c->{len};
        my $m = { type => $c->{type}, msid => $c->{msid}, ts => $c->{ts}, data => $c->{part},
                  at => Time::HiRes::time() };
        $c->{part} = undef;
        $r->{csize} = unpack('N', $m->{data}) & 0x7fffffff if $m->{type} == 1;
        push @{ $r->{msgs} }, $m;
        return $m;
    }
}

# Reads messages until $want->($msg) is true; returns that message (undef on timeout or EOF).
sub wait_msg {
    my ($r, $want, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 5);
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        my $m = next_msg($r, $left) // return undef;
        return $m if $want->($m);
    }
    return undef;
}

# wait_msg for several players at once (plays that run side by side): reads from all of them
# until $want->($msg) is true for a message of each; returns those messages in the order of
# @$players (undef for a player at EOF or still waiting after $secs seconds). A message's `at`
# says when it was read, within a few ms of its arrival.
sub wait_each {
    my ($players, $want, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 5);
    my @got = (undef) x @$players;
    my @waiting = (0 .. $#$players);
    while (1) {
        for my $i (@waiting) {
            while (my $m = parse_msg($players->[$i])) {
                if ($want->($m)) { $got[$i] = $m; last }
            }
        }
        @waiting = grep { !$got[$_] && !$players->[$_]{eof} } @waiting;
        last unless @waiting;
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0;
        my %by_sock = map { ($players->[$_]{sock} => $players->[$_]) } @waiting;
        my $sel = IO::Select->new(map { $players->[$_]{sock} } @waiting);
        read_more($by_sock{$_}) for $sel->can_read($left);
    }
    return @got;
}

# The status code of an onStatus / onPlayStatus message, '' for anything else.
sub status_of {
    my $m = shift;
    return '' unless $m->{type} == 20 || $m->{type} == 18;
    return '' unless $m->{data} =~ /\x00\x04code\x02(..)/s;
    return substr($m->{data}, $+[0], unpack('n', $1));
}

sub level_of { my $m = shift; $m->{data} =~ /level\x02\x00.(error|status|warning)/s ? $1 : '' }

# A video message that is a frame (not a sequence header): legacy AVC/HEVC NALUs or Enhanced
# RTMP coded frames.
sub is_frame {
    my $m = shift;
    return 0 unless $m->{type} == 9 && length $m->{data} > 2;
    my $b0 = ord $m->{data};
    return (($b0 & 0x0f) == 1 || ($b0 & 0x0f) == 3) if $b0 & 0x80;
    return ord(substr($m->{data}, 1, 1)) == 1;
}

sub is_key { (ord($_[0]{data}) >> 4 & 7) == 1 }

# The onMetaData number $key of a data message.
sub meta_num {
    my ($m, $key) = @_;
    return undef unless $m->{data} =~ /\x00\Q${\ chr length $key}$key\E\x00(.{8})/s;
    return unpack('d>', $1);
}

1;
