"""dfc.plan"""
