"""Demo clients and test-clip generation: the seed's ``demos/`` commands.

``generate_audio.py`` makes offline test clips with a manifest of reference text and
utterance times; ``demo_client.py`` streams them to the gateway and measures latency,
throughput, success rate, WER and worker distribution.
"""
