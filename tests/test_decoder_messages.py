"""libmpg123's per-frame messages are held back while a night is built; everything else still shows."""

from __future__ import annotations

import os

from owlfinder import audio

#: A real night recording with damaged MP3 frames (libsndfile reports six).
DAMAGED_MP3 = ("QutEcoacoustics__audio-analysis/Acoustics/Acoustics.Test/TestResources/"
               "Currawongs_curlew_West_Knoll_Bees_20091102-183000.mp3")


def test_only_libmpg123_lines_are_held_back(capfd):
    mpg = b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (3424) too large\n"
    with audio.quiet_decoder_messages() as held:
        os.write(2, b"progress 10%\r")  # a bar redraw without a newline passes at once
        os.write(2, mpg[:9])  # a message split across writes is still recognised
        os.write(2, mpg[9:] + mpg)
        os.write(2, b"a python warning\n")
        os.write(2, b"[src/other] kept\n")
        os.write(2, b"\rbar 50%|##  | 900/1800" + mpg + b"\rbar 52%")  # in the middle of a bar's line
    err = capfd.readouterr().err
    assert held.count == 3 and "libmpg123" not in err
    assert err == "progress 10%\ra python warning\n[src/other] kept\n\rbar 50%|##  | 900/1800\rbar 52%"


def test_a_damaged_real_mp3_decodes_quietly(shared_data, capfd):
    with audio.quiet_decoder_messages() as held:
        y = audio.load(shared_data / DAMAGED_MP3, 16000, max_duration_s=None)
    assert len(y) > 16000
    assert "libmpg123" not in capfd.readouterr().err
    assert held.count >= 1  # this file has damaged frames; libsndfile reports each one
