"""dfc.check"""
